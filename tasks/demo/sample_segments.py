"""Deterministic fake customer-segment CSVs: the bundled demo sample and benchmark inputs.

Reads no luigi.cfg section. Every address is fictional: e-mails at example.com/example.org,
phones in the 555-01xx range reserved for fiction (valid E.164 numbers for phonenumbers),
device tokens random in the shape of FCM registration tokens. A share `invalid_ratio` of the
rows carries one injected fault; the kinds are counted so tests can predict the outcome.
An extra column `first_name` (a template field; empty for customers without an e-mail) and,
without drawing from the random sequence, a shared address every `DUPLICATE_EVERY` rows (a
second customer id with the previous row's e-mail, or phone) as segment exports often have.

    python -m tasks.demo.sample_segments config/sample_segments.csv --rows 1000
"""

from __future__ import annotations

import argparse
import base64
import collections
import csv
import os
import random

from tasks.files import atomic_open

SEGMENTS = ("premium", "regular", "new")
# faults that reject the whole row, and faults that only cost the row one channel
ROW_FAULTS = ("duplicate_id", "bad_segment", "missing_id")
CHANNEL_FAULTS = ("bad_email", "bad_phone", "bad_token")
_AREA_CODES = ("201", "202", "212", "213", "305", "312", "415", "503", "617", "702", "718", "808")
_FIRST = ("ada", "alan", "grace", "linus", "margaret", "dennis", "barbara", "ken", "frances", "edsger")
DUPLICATE_EVERY = 150  # row i (i % 150 == 0) takes row i-1's e-mail; i % 150 == 75 its phone
_LAST = ("lovelace", "turing", "hopper", "torvalds", "hamilton", "ritchie", "liskov", "thompson", "allen")


def write_sample_csv(path: str | os.PathLike[str], rows: int = 1000, invalid_ratio: float = 0.015,
                     seed: int = 20261122) -> dict[str, int]:
    """Write `rows` data rows to `path` (atomically); return how many of each fault were injected.

    Every row without a fault is valid and has at least one valid address. A row with a
    channel fault keeps another valid address, so it stays a valid customer with one issue.
    """
    rng = random.Random(seed)
    faults: collections.Counter[str] = collections.Counter()
    kinds = ROW_FAULTS + CHANNEL_FAULTS
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["customer_id", "segment", "email", "phone", "device_token", "first_name"])
        last_id = ""
        previous: list[str] = []
        for i in range(1, rows + 1):
            row = _good_row(rng, i)
            if previous and i % DUPLICATE_EVERY == 0 and row[2] and previous[2]:
                row[2] = previous[2]  # another customer id, the same mailbox
            if previous and i % DUPLICATE_EVERY == DUPLICATE_EVERY // 2 and row[3] and previous[3]:
                row[3] = previous[3]
            previous = list(row)
            if rng.random() < invalid_ratio:
                kind = kinds[rng.randrange(len(kinds))]
                if kind == "duplicate_id" and not last_id:
                    kind = "bad_segment"
                _inject(rng, row, kind, i, last_id)
                faults[kind] += 1
            last_id = row[0] or last_id
            out.writerow(row)
    return {kind: faults.get(kind, 0) for kind in kinds}


def _good_row(rng: random.Random, i: int) -> list[str]:
    segment = SEGMENTS[rng.choices(range(3), weights=(2, 5, 3))[0]]
    if rng.random() < 0.05:
        segment = segment.capitalize()
    email = phone = token = ""
    has = rng.random()
    if has < 0.9:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        domain = "example.com" if i % 3 else "example.org"
        email = f"{first}.{last}{i}@{domain}"
        if rng.random() < 0.05:
            email = f"  {email.capitalize()} "
    if rng.random() < 0.7 or not email:
        phone = _phone(rng)
    if rng.random() < 0.5:
        token = _token(rng)
    first_name = email.strip().split(".")[0].capitalize() if email else ""
    return [f"C{i:07d}", segment, email, phone, token, first_name]


def _phone(rng: random.Random) -> str:
    area, line = rng.choice(_AREA_CODES), f"01{rng.randrange(100):02d}"
    style = rng.randrange(4)
    if style == 0:
        return f"+1 {area}-555-{line}"
    if style == 1:
        return f"({area}) 555-{line}"
    if style == 2:
        return f"{area}.555.{line}"
    return f"{area}555{line}"


def _token(rng: random.Random) -> str:
    """A random token shaped like an FCM registration token: <22 chars>:APA91b<134 chars>."""
    head = base64.urlsafe_b64encode(rng.randbytes(16)).decode()[:22]
    tail = base64.urlsafe_b64encode(rng.randbytes(101)).decode()[:134]
    return f"{head}:APA91b{tail}"


def _inject(rng: random.Random, row: list[str], kind: str, i: int, last_id: str) -> None:
    if kind == "duplicate_id":
        row[0] = last_id
    elif kind == "bad_segment":
        row[1] = "gold"
    elif kind == "missing_id":
        row[0] = ""
    elif kind == "bad_email":
        row[2] = f"customer{i}.example.com"
        row[3] = row[3] or _phone(rng)
    elif kind == "bad_phone":
        row[3] = f"555-{rng.randrange(10000):04d}"
        row[2] = row[2] or f"customer{i}@example.org"
    elif kind == "bad_token":
        row[4] = "not a token!"
        row[2] = row[2] or f"customer{i}@example.org"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--invalid-ratio", type=float, default=0.015)
    parser.add_argument("--seed", type=int, default=20261122)
    args = parser.parse_args(argv)
    print(write_sample_csv(args.path, args.rows, args.invalid_ratio, args.seed))


if __name__ == "__main__":
    main()
