"""PyMW 0.4's API on top of boinc-pymw, so that PyMW scripts run unchanged.

    from pymw import pymw, interfaces

    options, args = interfaces.parse_options()      # -i/--interface, -n/--num_workers, -p ...
    master = pymw.PyMW_Master(interface=interfaces.get_interface(options))
    task = master.submit_task(count_words, input_data=("a",), data_files=("words.txt",))
    task, result = master.get_result(task)

``pymw.PyMW_Master`` is a :class:`boinc_pymw.Master`; PyMW's interfaces
select boinc-pymw back ends (``generic`` runs as ``multicore``). See the
README's "Porting from PyMW".
"""

from . import interfaces, pymw
from .pymw import PyMW_Master

__all__ = ["pymw", "interfaces", "PyMW_Master"]
