"""``boinc_pymw keys generate DIR``: a project's code-signing and upload keys."""

from __future__ import annotations

COMMAND = "keys"
HELP = "generate a BOINC project's code_sign and upload key pairs (never overwrites)"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    generate = sub.add_parser(
        "generate", help="write code_sign_private/public and upload_private/public into DIR",
        description="Write 1024-bit RSA key pairs in BOINC's text key format "
                    "(as crypt_prog -genkey does). Existing pairs are kept untouched.")
    generate.add_argument("dir", metavar="DIR",
                          help="the project's key_dir (created 0700 if missing)")


def run(args) -> int:
    from ..boinc.signing import generate_keys

    outcome = generate_keys(args.dir)
    for pair, what in outcome.items():
        print(f"{pair}_private, {pair}_public: {what} in {args.dir}")
    return 0
