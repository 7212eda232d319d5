"""`recsys auth create-key` and `recsys auth list-keys`: the recommendation service's API keys.

A key is printed once, when it is made; the keys file keeps its SHA-256 only. Keys are never
given on a command line: the service reads them from ``access.keys_file``,
``$RECSYS_API_KEYS_FILE`` or ``$RECSYS_API_KEYS`` (``serving.access``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflows.cli.arguments import non_negative_float


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    auth = subparsers.add_parser("auth", help="API keys of the recommendation service")
    actions = auth.add_subparsers(dest="auth_command", required=True,
                                  metavar="create-key|list-keys")
    create = actions.add_parser(
        "create-key", help="make a key, store its digest, print the key once",
        description="Make a random API key with the given scopes, append its SHA-256 to the "
                    "keys file (created with mode 0600) and print the key on stdout, once: "
                    "the file never holds it. Scopes: recommend (POST /v1/recommendations, "
                    "GET /v1/explain), ingest (POST /v1/events, /v1/items), console (the "
                    "console's pages and their JSON), admin (promotions, every other route; "
                    "it reads the console too).")
    create.add_argument("--keys-file", type=Path, required=True, metavar="FILE",
                        help="the keys file the service reads (access.keys_file)")
    create.add_argument("--name", required=True, help="the key's name, shown in logs")
    create.add_argument("--scopes", required=True, metavar="SCOPE[,SCOPE...]",
                        help="recommend, ingest, console and/or admin")
    create.add_argument("--rate-limit", type=non_negative_float, default=0.0, metavar="PER_S",
                        help="requests per second over all service processes (0 = unlimited)")
    create.add_argument("--burst", type=non_negative_float, metavar="N",
                        help="requests allowed at once above the rate (default 2 x rate)")
    create.set_defaults(func=run_create_key)
    listing = actions.add_parser("list-keys", help="names, scopes and limits of the keys")
    listing.add_argument("--keys-file", type=Path, required=True, metavar="FILE")
    listing.set_defaults(func=run_list_keys)


def run_create_key(args: argparse.Namespace) -> int:
    from serving.access.keys import add_key, parse_scopes

    scopes = parse_scopes(args.scopes, "--scopes")
    token = add_key(args.keys_file, args.name, scopes, args.rate_limit, args.burst)
    print(token)
    return 0


def run_list_keys(args: argparse.Namespace) -> int:
    from serving.access.keys import read_keys_file

    for key in read_keys_file(args.keys_file):
        limit = (f"{key.rate_limit_per_s:g}/s, burst {key.burst:g}" if key.rate_limit_per_s
                 else "no rate limit")
        print(f"{key.name:<24} {','.join(sorted(key.scopes)):<24} {limit}  "
              f"sha256 {key.sha256[:12]}...")
    return 0
