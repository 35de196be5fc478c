"""One party floods a relay while others write at a normal pace (issue 13's load run).

    .venv/bin/python bench/limits_flood.py --port 25250 --seconds 20 \
        --flood ALIAS=SENDER --legit ALIAS=SENDER --legit ALIAS=SENDER ...

The flooder runs ``--flood-conns`` connections back to back; each legitimate party sends
one message every ``--legit-interval`` seconds. Prints one JSON object: per party the
replies by code, and the accepted messages per second overall. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib


def _message(sender: str, alias: str, n: int) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, alias, f"Question {n} about my order"
    m["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    m.set_content("Hello, could you tell me when my parcel will arrive? Thank you.\n")
    return m.as_bytes()


async def _one(port: int, sender: str, alias: str, n: int) -> str:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60, start_tls=False)
    try:
        await client.connect()
        await client.sendmail(sender, [alias], _message(sender, alias, n))
        return "250"
    except aiosmtplib.SMTPRecipientsRefused as err:
        return str(err.recipients[0].code)
    except aiosmtplib.SMTPResponseException as err:
        return str(err.code)
    except (aiosmtplib.SMTPException, OSError):
        return "error"
    finally:
        with contextlib.suppress(Exception):
            await client.quit()


async def _flood(port: int, target: str, until: float, seen: Counter[str]) -> None:
    alias, sender = target.split("=")
    n = 0
    while time.monotonic() < until:
        n += 1
        seen[await _one(port, sender, alias, n)] += 1


async def _legit(port: int, target: str, until: float, interval: float, seen: Counter[str]):
    alias, sender = target.split("=")
    n = 0
    while time.monotonic() < until:
        n += 1
        seen[await _one(port, sender, alias, n)] += 1
        await asyncio.sleep(interval)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--flood", required=True, help="ALIAS=SENDER of the flooding party")
    ap.add_argument("--flood-conns", type=int, default=10)
    ap.add_argument("--legit", action="append", default=[], help="ALIAS=SENDER (repeatable)")
    ap.add_argument("--legit-interval", type=float, default=1.0)
    args = ap.parse_args()
    until = time.monotonic() + args.seconds
    flood: Counter[str] = Counter()
    legit = [Counter[str]() for _ in args.legit]
    started = time.monotonic()
    await asyncio.gather(
        *(_flood(args.port, args.flood, until, flood) for _ in range(args.flood_conns)),
        *(_legit(args.port, t, until, args.legit_interval, c)
          for t, c in zip(args.legit, legit, strict=True)),
    )  # fmt: skip
    elapsed = time.monotonic() - started
    accepted = flood["250"] + sum(c["250"] for c in legit)
    print(json.dumps({
        "seconds": round(elapsed, 1),
        "flood": dict(flood),
        "legit": [dict(c) for c in legit],
        "accepted_per_second": round(accepted / elapsed, 1),
        "answered_per_second": round((sum(flood.values()) + sum(sum(c.values()) for c in legit))
                                     / elapsed, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
