"""A second process on a test's database, for tests/test_turns.py: ``python -m tests.turn_worker ACTION DB ARGS``.

- ``idle SECONDS``: open the database, read, stay idle (as the app between reruns), read again; prints how many
  times it opened the file.
- ``transaction SECONDS KEY``: write ``KEY`` in a transaction that stays open for SECONDS before it commits.
- ``inserts N TAG``: N transactions, each adding one meta row ``TAG-i``.
"""

from __future__ import annotations

import sys
import time

from terrmap.data.store import Store


def main(action: str, db: str, *args: str) -> None:
    store = Store(db, lock_wait=60)
    if action == "idle":
        store.scalar("SELECT count(*) FROM meta")
        print("ready", flush=True)
        time.sleep(float(args[0]))
        store.scalar("SELECT count(*) FROM meta")
        print(f"opened {store._shared.opened}", flush=True)
    elif action == "transaction":
        with store.transaction() as tx:
            tx.execute("INSERT INTO meta VALUES (?, 'half')", [args[1]])
            print("ready", flush=True)
            time.sleep(float(args[0]))
            tx.execute("UPDATE meta SET value = 'whole' WHERE key = ?", [args[1]])
    elif action == "inserts":
        print("ready", flush=True)
        for i in range(int(args[0])):
            with store.transaction() as tx:
                tx.execute("INSERT INTO meta VALUES (?, 'x')", [f"{args[1]}-{i}"])
            time.sleep(0.01)
    store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
