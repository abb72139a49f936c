#!/usr/bin/env bash
# Install everything boinc-pymw and its tests need on a fresh Debian 12
# machine (run as root, or with sudo available), start MariaDB if it is not
# running, and create the virtual environment .venv with the package in it.
# Safe to run again: each step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

APT_PACKAGES=(
  # compilers and build tools: the launcher, the oracles, the interpreter
  build-essential cmake pkg-config
  # database: server for tests, client library for mysqlclient
  mariadb-server mariadb-client libmariadb-dev
  # Python for the venv and the portable interpreter build
  python3 python3-venv python3-dev libpython3.11-dev
  # BOINC's own code, used as the judge and linked into the interpreter
  libboinc-app-dev libboinc7 boinc-client
  # Windows cross-build and test
  mingw-w64 wine wine64
  # MPI back end
  mpich
  # a filesystem view without the host's Python (interpreter test)
  bubblewrap
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# MariaDB on 127.0.0.1:3306, root with an empty password (tests' default).
if ! mysqladmin -h127.0.0.1 -uroot --connect-timeout=2 ping >/dev/null 2>&1; then
  echo "setup: starting MariaDB"
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
  $SUDO service mariadb start >/dev/null 2>&1 \
    || $SUDO start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 60); do
    mysqladmin --connect-timeout=2 ping >/dev/null 2>&1 && break
    sleep 1
  done
fi
if ! mysql -h127.0.0.1 -uroot -e 'select 1' >/dev/null 2>&1; then
  # Debian's default root account only accepts the unix socket.
  $SUDO mysql -uroot -e "ALTER USER root@localhost IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;"
fi

# Python environment.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel
.venv/bin/python -m pip install -q -e ".[test,progress,condor]"
# MPI: PyPI's MPICH (5.x, where MPI_Comm_spawn works; Debian 12's 4.0.2 with
# ch4:ucx refuses it) and mpi4py's binary wheel, which loads the venv's libmpi.
# --force-reinstall replaces an mpi4py built earlier against Debian's MPICH.
if [ ! -x .venv/bin/mpiexec ]; then
  .venv/bin/python -m pip install -q "mpich>=4.1,<6"
  .venv/bin/python -m pip install -q --force-reinstall --no-deps --only-binary mpi4py "mpi4py>=4.0"
fi
echo "setup: done (.venv ready)"
