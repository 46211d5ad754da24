"""The segments core on small real files: every rule, both CSV readers, and the invariant."""

from __future__ import annotations

import collections
import csv
import json
import random
from pathlib import Path

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks import pii
from tasks.campaign import segments
from tasks.campaign.segments import LoadOptions, customers_for_channel, dfa, load_segments, read, validate
from tasks.campaign.segments.model import customers_schema
from tasks.config import PROJECT_ROOT
from tasks.demo.sample_segments import write_sample_csv
from tasks.errors import DataValidationError

HEADER = "customer_id,segment,email,phone,device_token\n"
TOKEN = "dGVzdC10b2tlbg:APA91b" + "x" * 40


def load(tmp_path: Path, text: str | bytes, **options) -> dict:
    """Load `text` as a CSV; return the summary plus the customers and rejects it produced."""
    src = tmp_path / "in.csv"
    src.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    options.setdefault("max_reject_ratio", 1.0)
    result = load_segments(src, tmp_path / "out", LoadOptions(**options))
    s = result.summary
    assert s["rows_read"] == s["valid"] + s["rejected"] + s["blank_lines"]
    assert json.loads(result.summary_path.read_text()) == s
    customers = pq.read_table(result.customers_path)
    assert customers.schema == customers_schema(tuple(s["extra_columns"]))
    assert customers.num_rows == s["valid"]
    with open(result.rejects_path, newline="", encoding="utf-8") as fh:
        rejects = list(csv.DictReader(fh))
    assert sum(r["scope"] == "row" for r in rejects) == s["rejected"]
    return {"summary": s, "customers": customers.to_pylist(), "rejects": rejects}


def test_bundled_sample_counts_match_the_injected_faults(tmp_path: Path) -> None:
    faults = write_sample_csv(tmp_path / "s.csv", rows=3000, invalid_ratio=0.03, seed=5)
    result = load_segments(tmp_path / "s.csv", tmp_path / "out", LoadOptions())
    s = result.summary
    assert s["rows_read"] == 3000
    assert s["rejected_by_reason"] == {
        k: v for k, v in {"duplicate_customer_id": faults["duplicate_id"], "invalid_segment": faults["bad_segment"],
                          "missing_customer_id": faults["missing_id"]}.items() if v
    }
    assert s["channel_issues_by_reason"]["email"].get("invalid_email", 0) == faults["bad_email"]
    assert s["channel_issues_by_reason"]["sms"].get("invalid_phone", 0) == faults["bad_phone"]
    assert s["channel_issues_by_reason"]["push"].get("invalid_device_token", 0) == faults["bad_token"]
    assert s["valid"] + s["rejected"] == 3000


def test_bundled_sample_is_the_generator_output(tmp_path: Path) -> None:
    write_sample_csv(tmp_path / "s.csv")
    bundled = PROJECT_ROOT / "config" / "sample_segments.csv"
    assert (tmp_path / "s.csv").read_bytes() == bundled.read_bytes()


def test_header_is_matched_ignoring_case_whitespace_order_bom_and_extra_columns(tmp_path: Path) -> None:
    text = "\ufeff Phone ,EMAIL,notes, Customer_ID,Segment ,device_token\n+12025550123,a@example.com,hi,c1,new,\n"
    out = load(tmp_path, text)
    assert out["customers"] == [
        {"customer_id": "c1", "segment": "new", "email": "a@example.com", "phone": "+12025550123", "device_token": None,
         "notes": "hi"}
    ]


def test_extra_columns_are_carried_as_template_fields(tmp_path: Path) -> None:
    text = ("customer_id,segment,email,phone,device_token, First Name ,plan,date,notes,Notes,2nd\n"
            "c1,new,a@example.com,,, Ann ,gold,2020-01-01,x,y,z\n"
            "c2,new,b@example.com,,,,  ,,,,\n"
            ",,,,,,,,,,\n"
            "c3,gold,c@example.com,,,Bob,basic,,,,\n")
    out = load(tmp_path, text)
    s = out["summary"]
    assert s["extra_columns"] == ["first_name", "plan", "notes", "_2nd"]
    assert s["ignored_columns"] == ["date", "Notes"]  # a field the send sets itself; a repeated name
    assert (s["valid"], s["rejected"], s["blank_lines"]) == (2, 1, 1)
    assert [(c["customer_id"], c["first_name"], c["plan"], c["notes"], c["_2nd"]) for c in out["customers"]] == [
        ("c1", "Ann", "gold", "x", "z"), ("c2", None, None, None, None)]  # trimmed; empty is null
    (reject,) = [r for r in out["rejects"] if r["scope"] == "row"]
    assert (reject["reason"], reject["first_name"], reject["plan"]) == ("invalid_segment", "Bob", "basic")


def test_missing_columns_are_named(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("customer_id,segment,mail\nc1,new,a@example.com\n")
    with pytest.raises(DataValidationError) as err:
        load_segments(tmp_path / "in.csv", tmp_path / "out")
    assert "missing column(s): email, phone, device_token" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", [b"", HEADER.encode(), HEADER.rstrip("\n").encode()])
def test_empty_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "in.csv").write_bytes(content)
    with pytest.raises(DataValidationError, match=r"empty|no data rows"):
        load_segments(tmp_path / "in.csv", tmp_path / "out")
    assert not (tmp_path / "out" / "summary.json").exists()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="no such file"):
        load_segments(tmp_path / "nope.csv", tmp_path / "out")


@pytest.mark.parametrize("chunk_rows", [1, 2, 50_000])
def test_duplicate_ids_first_row_wins_across_chunks(tmp_path: Path, chunk_rows: int) -> None:
    text = HEADER + "c1,new,first@example.com,,\nc2,new,b@example.com,,\n c1 ,premium,second@example.com,,\n"
    out = load(tmp_path, text, chunk_rows=chunk_rows)
    assert [(c["customer_id"], c["email"]) for c in out["customers"]] == [("c1", "first@example.com"),
                                                                           ("c2", "b@example.com")]
    assert [(r["line_number"], r["reason"], r["email"]) for r in out["rejects"]] == [
        ("4", "duplicate_customer_id", "second@example.com")
    ]


def test_missing_id_and_bad_segment_reject_the_row_and_segment_is_case_insensitive(tmp_path: Path) -> None:
    text = HEADER + ",new,a@example.com,,\nc2,gold,b@example.com,,\nc3, PREMIUM ,c@example.com,,\n"
    out = load(tmp_path, text)
    assert out["summary"]["rejected_by_reason"] == {"missing_customer_id": 1, "invalid_segment": 1}
    assert [(c["customer_id"], c["segment"]) for c in out["customers"]] == [("c3", "premium")]


def test_configured_segments_replace_the_default_set(tmp_path: Path) -> None:
    out = load(tmp_path, HEADER + "c1,gold,a@example.com,,\nc2,new,b@example.com,,\n", segments=("Gold",))
    assert [c["segment"] for c in out["customers"]] == ["gold"]


def test_bad_address_costs_only_its_channel(tmp_path: Path) -> None:
    text = HEADER + f"c1,new,not-an-email,(202) 555-0123,{TOKEN}\nc2,new, Bob@Example.ORG ,555-1234,bad token\n"
    out = load(tmp_path, text)
    assert out["customers"] == [
        {"customer_id": "c1", "segment": "new", "email": None, "phone": "+12025550123", "device_token": TOKEN},
        {"customer_id": "c2", "segment": "new", "email": "bob@example.org", "phone": None, "device_token": None},
    ]
    assert [(r["line_number"], r["scope"], r["reason"]) for r in out["rejects"]] == [
        ("2", "email", "invalid_email"), ("3", "sms", "invalid_phone"), ("3", "push", "invalid_device_token")
    ]
    assert out["summary"]["valid_per_channel"] == {"email": 1, "sms": 1, "push": 1}
    assert out["summary"]["channel_issues_by_reason"] == {
        "email": {"invalid_email": 1}, "sms": {"invalid_phone": 1}, "push": {"invalid_device_token": 1}
    }


def test_row_without_any_valid_address_is_rejected(tmp_path: Path) -> None:
    out = load(tmp_path, HEADER + "c1,new,nope,12,short\nc2,new,,,\nc3,new,c@example.com,,\n")
    assert out["summary"]["rejected_by_reason"] == {"no_valid_address": 2}
    assert [c["customer_id"] for c in out["customers"]] == ["c3"]


@pytest.mark.parametrize(
    "raw, e164",
    [("+1 202-555-0123", "+12025550123"), ("(202) 555-0123", "+12025550123"), ("202.555.0123", "+12025550123"),
     ("1 202 555 0123", "+12025550123"), ("+44 20 7946 0958", "+442079460958"), ("202-555-0123 ext. 4", None),
     ("555-0123", None), ("+1 123 456 7890", None), ("phone", None)],
)
def test_phones_are_normalised_to_e164(tmp_path: Path, raw: str, e164: str | None) -> None:
    out = load(tmp_path, HEADER + f'c1,new,a@example.com,"{raw}",\n')
    expected = e164 if e164 else None
    if raw.endswith("ext. 4"):  # a valid number with an extension: phonenumbers keeps the number
        expected = "+12025550123"
    assert out["customers"][0]["phone"] == expected


def test_default_region_applies_to_national_numbers(tmp_path: Path) -> None:
    out = load(tmp_path, HEADER + "c1,new,,020 7946 0958,\n", default_region="GB")
    assert out["customers"][0]["phone"] == "+442079460958"


@pytest.mark.parametrize("token, ok", [(TOKEN, True), ("a" * 31, False), ("a" * 513, False), ("ab cd" * 10, False),
                                       ("é" * 40, False), ("a-b_c:d" * 6, True)])
def test_device_token_shape(tmp_path: Path, token: str, ok: bool) -> None:
    out = load(tmp_path, HEADER + f"c1,new,a@example.com,,{token}\n")
    assert (out["customers"][0]["device_token"] == token) is ok


def test_latin1_rows_decode_with_the_fallback_or_are_rejected(tmp_path: Path) -> None:
    data = (HEADER + "c1,new,a@example.com,,\n").encode() + "José,new,b@example.com,,\n".encode("latin-1")
    out = load(tmp_path, data)
    assert [c["customer_id"] for c in out["customers"]] == ["c1", "José"]
    assert out["summary"]["decoded_with_fallback_encoding"] == 1

    strict = load(tmp_path, data, encoding="")
    assert [(r["line_number"], r["reason"], r["customer_id"]) for r in strict["rejects"]] == [
        ("3", "undecodable", "Jos\\xe9")
    ]
    # 0x81 is undefined in cp1252: rejected even with the fallback, never a UnicodeDecodeError
    out = load(tmp_path, data + b"c\x81,new,c@example.com,,\n")
    assert out["summary"]["rejected_by_reason"] == {"undecodable": 1}


def test_an_undecodable_row_with_too_many_fields_is_rejected_without_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pyarrow decodes an invalid row as UTF-8 before its handler runs; on these bytes that failed
    # inside pyarrow and printed "Exception ignored in: on_invalid" (a UnicodeDecodeError) to stderr
    unraisable: list = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)
    data = (HEADER + "c1,new,a@example.com,,\n").encode() + b"c\xff2,new,b@example.com,,,extra\n"
    out = load(tmp_path, data + b"c3,new,c@example.com,,\n")
    assert unraisable == []
    assert [c["customer_id"] for c in out["customers"]] == ["c1", "c3"]
    assert [(r["line_number"], r["reason"]) for r in out["rejects"]] == [("3", "wrong_field_count")]


def test_whole_latin1_file_with_latin1_header(tmp_path: Path) -> None:
    data = ("customer_id,segment,email,phone,device_token,Stadt\n" "c1,new,a@example.com,,,Köln\n").encode("latin-1")
    out = load(tmp_path, data, encoding="latin-1")
    assert out["summary"]["valid"] == 1


def test_huge_fields_are_rejected_and_do_not_crash_either_reader(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    huge = "x" * 300_000  # over the csv module's default field_size_limit (131072)
    text = HEADER + f"c1,new,a@example.com,,\nc2,new,{huge}@example.com,,\nc3,new,c@example.com,,\n"
    expected = {"c1", "c3"}
    out = load(tmp_path, text)
    assert {c["customer_id"] for c in out["customers"]} == expected
    [reject] = out["rejects"]
    assert (reject["line_number"], reject["reason"]) == ("3", "field_too_long")
    assert len(reject["email"]) < 2000 and "truncated" in reject["email"]
    # a row longer than the arrow reader's block: the load restarts on the csv module
    monkeypatch.setattr(read, "_ARROW_BLOCK_SIZE", 4096)
    again = load(tmp_path, text)
    assert again["summary"] | {"duration_s": 0} == out["summary"] | {"duration_s": 0}


RAGGED = (HEADER + "c1,new,a@example.com,,\n\nc2,new,b@example.com\nc3,new,\"multi\nline\",,\n"
          "c4,new,d@example.com,,,extra\nc5,new,e@example.com,,\n")


@pytest.fixture(params=["arrow", "csv-module"])
def either_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on both readers: a 40-byte block makes pyarrow give up, so the csv module reads."""
    if request.param == "csv-module":
        monkeypatch.setattr(read, "_ARROW_BLOCK_SIZE", 40)
    return request.param


def test_ragged_rows_and_line_numbers(tmp_path: Path, either_reader: str) -> None:
    out = load(tmp_path, RAGGED, chunk_rows=2)
    assert [c["customer_id"] for c in out["customers"]] == ["c1", "c5"]
    # a field may not span lines: the open quote rejects its line, the next line is read on its own
    assert [(r["line_number"], r["reason"]) for r in out["rejects"]] == [
        ("4", "wrong_field_count"), ("5", "malformed_quotes"), ("6", "wrong_field_count"), ("7", "wrong_field_count")
    ]
    assert out["rejects"][0]["raw_line"] == "c2,new,b@example.com"
    assert out["summary"]["rows_read"] == 7 and out["summary"]["blank_lines"] == 1


def test_an_unclosed_quote_costs_one_row_never_the_rest_of_the_file(tmp_path: Path, either_reader: str) -> None:
    rows = [f"c{i},new,user{i}@example.com,," for i in range(101)]
    rows[50] = 'c50,new,"oops@example.com,,'
    out = load(tmp_path, HEADER + "\n".join(rows) + "\n", max_reject_ratio=0.05)
    s = out["summary"]
    assert (s["rows_read"], s["valid"], s["rejected"], s["blank_lines"]) == (101, 100, 1, 0)
    assert [(r["line_number"], r["reason"]) for r in out["rejects"]] == [("52", "malformed_quotes")]
    assert "c100" in {c["customer_id"] for c in out["customers"]}


def test_blank_and_whitespace_lines_are_skipped_counted_and_never_gate(tmp_path: Path, either_reader: str) -> None:
    rows = [f"c{i},new,user{i}@example.com,," for i in range(20)]
    rows.insert(10, "   \t ")
    text = HEADER + "\r\n".join(rows) + "\r\n\r\n\r\n"  # CRLF, a whitespace line, two trailing blank lines
    out = load(tmp_path, text, max_reject_ratio=0.05)
    s = out["summary"]
    assert (s["rows_read"], s["valid"], s["rejected"], s["blank_lines"]) == (23, 20, 0, 3)
    assert out["rejects"] == []


def test_a_file_of_blank_lines_has_no_data_rows(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(HEADER + "\n  \n\n")
    with pytest.raises(DataValidationError, match="no data rows"):
        load_segments(tmp_path / "in.csv", tmp_path / "out", LoadOptions())


def test_rejects_csv_cells_cannot_run_as_formulas(tmp_path: Path) -> None:
    text = HEADER + ('"=HYPERLINK(""http://evil.example"")",bogus,a@example.com,,\n'
                     "@SUM(A1),new,,,\n"
                     "c3,+cmd|' /C calc'!A0,b@example.com,-2+3,\n"
                     "c4,new,c@example.com,,\n")
    out = load(tmp_path, text)
    cells = [v for r in out["rejects"] for k, v in r.items() if k != "line_number"]
    assert "'=HYPERLINK(\"http://evil.example\")" in cells
    assert "'@SUM(A1)" in cells and "'+cmd|' /C calc'!A0" in cells and "'-2+3" in cells
    assert not [v for v in cells if v and v[0] in "=+-@\t\r"]
    assert [c["customer_id"] for c in out["customers"]] == ["c4"]  # customers.parquet keeps values as they are


def test_reject_ratio_gate_keeps_rejects_but_publishes_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text(HEADER + "c1,new,a@example.com,,\nc1,new,b@example.com,,\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "customers.parquet").write_text("stale")
    with pytest.raises(DataValidationError, match="max_reject_ratio: 1 of 2 rows rejected"):
        load_segments(tmp_path / "in.csv", out, LoadOptions(max_reject_ratio=0.05))
    assert (out / "rejects.csv").exists()
    assert not (out / "customers.parquet").exists() and not (out / "summary.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["rejects.csv"]  # no temporary files left


def test_customers_for_channel(tmp_path: Path) -> None:
    text = HEADER + (f"c3,new,c@example.com,,{TOKEN}\nc1,premium,a@example.com,2025550123,\n"
                     "c2,new,,2025550124,\n")
    load(tmp_path, text)
    path = tmp_path / "out" / "customers.parquet"
    email_all = customers_for_channel(path, "email", "all")
    assert email_all.column_names == ["customer_id", "segment", "email"]
    assert email_all.column("customer_id").to_pylist() == ["c1", "c3"]
    assert customers_for_channel(path, "sms", "new").to_pylist() == [
        {"customer_id": "c2", "segment": "new", "phone": "+12025550124"}
    ]
    assert customers_for_channel(path, "push", "premium").num_rows == 0
    with pytest.raises(ValueError):
        customers_for_channel(path, "fax", "all")


EMAILS = ["a@example.com", "A.B+tag@Sub.Example.ORG", "a..b@example.com", ".a@example.com", "a.@example.com",
          "a@-example.com", "a@example-.com", "a@ex--ample.com", "a@xn--bcher-kva.example", "a@example.test",
          "a@localhost", "a@example", "a@example.c0m", "a@1.2.3.4", "ü@example.com", "a@exämple.com", "a b@example.com",
          '"quoted"@example.com', "x" * 64 + "@example.com", "x" * 65 + "@example.com",
          "a@" + ("b" * 63 + ".") * 3 + "com", "a@" + "b" * 64 + ".com", "a_%-+@ex.co", "a@ex.co.", "a@@b.com",
          # RE2's (?i) folds U+017F to s and U+212A to k: the DFA does not, email-validator decides
          "\u017f@example.com", "a@exampl\u212a.com", "A@EXAMPLE.INVALID", "a@sub.Local"]


def test_email_fast_path_agrees_with_email_validator() -> None:
    validator = validate.Validator(LoadOptions())
    result, _ = validator._emails(pa.array(EMAILS))
    assert result.to_pylist() == [validate._slow_email(e) for e in EMAILS]


@pytest.mark.parametrize("region", ["US", "DE", "FR", "IT", "SE", "CH"])
def test_dfas_match_exactly_what_re2_matches(region: str) -> None:
    """Each pattern the fast paths run as a DFA, against pyarrow's RE2 on random strings of the bytes
    that matter (ASCII only: there the DFA and RE2 must agree on every value)."""
    import pyarrow.compute as pc

    fast = validate._PhoneFastPath.for_region(region)
    assert fast is not None
    patterns = [fast.general[0], *(p for p, _ in fast.types), validate._PHONE_SHAPE_RE]
    if region == "US":
        patterns += [validate._EMAIL_FAST_RE, r"^[A-Za-z0-9_:-]+$"]
    rng = random.Random(region)
    values = ["", "0", "+", "a@b.co"]
    for alphabet in ("0123456789", "0123456789+-. ()", "abzAZ09_%+-.@", "ab.-@XY1_%:"):
        values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16))) for _ in range(3000)]
    values += [rng.choice(["a", "b.c", "x-y"]) + "@" + rng.choice(["ex", "e-x", "e--x", "a.b"]) + "."
               + rng.choice(["com", "c", "c0m", "org", "test", "local"]) for _ in range(2000)]
    column = pa.array(values)
    matched = 0
    for pattern in patterns:
        automaton = dfa.compile_dfa(pattern)
        expected = pc.match_substring_regex(column, pattern).to_pylist()
        assert [automaton.fullmatch(v.encode()) for v in values] == expected, pattern
        matched += sum(expected)
    assert matched > 1000  # the sample is not all misses


def test_dfa_compiler_refuses_what_it_cannot_translate() -> None:
    for pattern in (r"[^a]b", r"a.b", r"a(?=b)", r"(a)\1", r"é", r"a^b"):
        with pytest.raises(dfa.UnsupportedPatternError):
            dfa.compile_dfa(pattern)


def test_dfa_minus_is_the_difference() -> None:
    both = dfa.compile_dfa(r"[a-c]+").minus(dfa.compile_dfa(r"[a-z]*b[a-z]*"))
    assert [both.fullmatch(v) for v in (b"aac", b"abc", b"", b"ccc", b"d")] == [True, False, False, True, False]


def test_phone_fast_path_is_off_where_metadata_alone_is_not_exact() -> None:
    assert validate._PhoneFastPath.for_region("GB") is None  # national prefix '0|180020' is a pattern


@pytest.mark.parametrize("region", ["US", "DE", "FR", "IT", "SE", "CH"])
def test_phone_fast_path_agrees_with_phonenumbers(region: str) -> None:
    """Valid numbers the fast path passes and impossible ones it settles match the library exactly,
    including numbers that start with the calling code, the national prefix or the IDD prefix."""
    rng = random.Random(region)
    code = str(phonenumbers.country_code_for_region(region))
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix, idd = metadata.national_prefix_for_parsing or "", metadata.international_prefix or ""
    starts = ["", "", "", code, prefix, idd, code + prefix]
    values = []
    for _ in range(6000):
        digits = rng.choice(starts) + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 15)))
        style = rng.randrange(6)
        if style == 0:
            value = "+" + code + digits
        elif style == 1:
            value = f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
        elif style == 2:
            value = ".".join(digits[i:i + 3] for i in range(0, len(digits), 3))
        elif style == 3:
            value = f"+{code} {digits}"
        else:
            value = digits
        values.append(value)
    values += ["+1 202 555 0123", "(202)5550123", "2025550123", "+12025550123", "020 7946 0958", "030 901820",
               "555-8752", "1 555 8752", "011 44 20 7946 0958"]
    validator = validate.Validator(LoadOptions(default_region=region))
    assert validator.phone_fast is not None
    result, _ = validator._phones(pa.array(values))
    assert result.to_pylist() == [validate._slow_phone(v, region) for v in values]
    assert sum(v is not None for v in result.to_pylist()) > 50  # the sample is not all invalid


def test_phone_numbers_that_cannot_be_valid_skip_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(validate, "_slow_phone", lambda value, region: calls.append(value))
    validator = validate.Validator(LoadOptions(default_region="US"))
    result, issue = validator._phones(pa.array(["555-8752", "2025550123", "555-87", "1 555 8752"]))
    assert result.to_pylist()[:3] == [None, "+12025550123", None] and issue.tolist()[:3] == [True, False, True]
    assert calls == ["1 555 8752"]  # a leading 1 may be stripped: only the library can tell


def test_pii_masks_hide_the_address() -> None:
    assert pii.mask_email("alice@example.com") == "a***@example.com"
    assert "5550123" not in pii.mask_phone("+12025550123")
    assert TOKEN not in pii.mask_token(TOKEN) and pii.mask_token(TOKEN).startswith(TOKEN[:4])
    assert pii.mask_email(None) == pii.mask_phone("") == "<none>"


@pytest.mark.parametrize(("data", "lines"), [
    (b"a\r\nb\r\n", 2), (b"a\rb\r", 2), (b"a\nb", 2), (b"", 0), (b"\n\n", 2), (b"a\r\n\r\nb", 3), (b"a\n\rb", 3),
])
def test_count_lines_counts_lf_crlf_and_lone_cr(data: bytes, lines: int) -> None:
    assert read.count_lines(data) == lines


@pytest.mark.parametrize("data", [b"h\na\nbb\r\nccc\rd\n\neee", b"h\r\n" + b"x,y\r\n" * 50, b"h\rx\ry\rz", b"h\n"])
def test_ranges_are_whole_lines_that_cover_the_data(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    start = read.data_start(path)
    assert data[:start].rstrip(b"\r\n") == b"h" and data[start - 1:start] in (b"\n", b"\r")
    for target in (1, 2, 5, 1 << 20):
        ranges = read.split_ranges(path, start, target)
        assert [a for a, _ in ranges[1:]] == [b for _, b in ranges[:-1]]  # no gap, no overlap
        assert (ranges[0][0], ranges[-1][1]) == (start, len(data)) if ranges else start == len(data)
        assert all(data[b - 1:b] == b"\n" for _, b in ranges[:-1])  # a range ends after a LF (never in a CRLF)
        assert sum(read.count_lines(data[a:b]) for a, b in ranges) == read.count_lines(data[start:])


def test_parallel_ranges_give_the_same_result_as_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    rows = [f"c{rng.randrange(400)},{rng.choice(['new', 'premium', 'bogus'])},u{i}@example.com,,"
            for i in range(3000)]  # ids repeat within and across ranges
    rows[1500:1500] = ["", "   ", 'c9,new,"open@example.com,,', ",,,,"]
    text = HEADER + "\r\n".join(rows) + "\r\n"
    out = {}
    for workers in (1, 2, 4):
        monkeypatch.setattr(segments, "_workers", lambda ranges, w=workers: w)
        (tmp_path / str(workers)).mkdir()
        result = load(tmp_path / str(workers), text, chunk_rows=97)
        out[workers] = (result["summary"] | {"duration_s": 0, "input_path": ""}, result["customers"], result["rejects"])
    assert out[1] == out[2] == out[4]
    ids = [c["customer_id"] for c in out[1][1]]
    assert len(ids) == len(set(ids))
    first = {}
    for line, row in enumerate(rows, start=2):  # the first row of an id with an allowed segment wins
        cid, seg = row.split(",")[0], [*row.split(","), ""][1]
        if cid and cid not in first and not row.startswith(("c9,new,\"", ",")):
            first[cid] = (line, seg)
    assert sorted(ids) == sorted(c for c, (_, seg) in first.items() if seg in ("new", "premium"))


def test_a_failing_chunk_fails_the_load_and_never_hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = HEADER + "".join(f"c{i},new,u{i}@example.com,,\n" for i in range(500))
    calls = []
    real = read.read_range

    def flaky(path, start, end, **kw):
        calls.append(start)
        if len(calls) == 3:
            raise OSError("disk went away")
        return real(path, start, end, **kw)

    monkeypatch.setattr(segments, "read_range", flaky)
    with pytest.raises(OSError, match="disk went away"):
        load(tmp_path, text, chunk_rows=20)
    assert not (tmp_path / "out" / "customers.parquet").exists()
    assert not (tmp_path / "out" / "summary.json").exists()


def test_id_hashes_equal_exactly_for_equal_ids() -> None:
    rng = random.Random(3)
    alphabet = "abcXYZ019-_é"
    ids = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(20_000)]
    ids += ["x" * 1024, "x" * 1023, "a", "a\x00", "12345678", "123456789", "1234567", "é" * 300]
    column = pa.array(ids * 2, pa.string()).slice(3)  # a slice: offsets do not start at 0
    h1, h2 = validate.id_hashes(column)
    values = column.to_pylist()
    by_hash: dict[tuple[int, int], str] = {}
    for value, a, b in zip(values, h1.tolist(), h2.tolist(), strict=True):
        assert by_hash.setdefault((a, b), value) == value  # same hash -> same id
    assert len(by_hash) == len(set(values))  # different ids -> different hashes


def test_seen_ids_remembers_every_id_as_it_grows() -> None:
    seen = validate.SeenIds()
    rng = np.random.default_rng(1)
    added: set[tuple[int, int]] = set()
    for size in (1, 5, 1000, 3, 4000, 17, 10_000):
        h1 = rng.integers(0, 2**64, size=size, dtype=np.uint64)
        h1[: size // 3] = 42  # equal first halves must still be told apart by the second
        h2 = rng.integers(0, 2**64, size=size, dtype=np.uint64)
        h1[-1:], h2[-1:] = h1[:1], h2[:1]  # a repeat within one call: the first one claims it
        if size > 3:
            h1[1], h2[1] = next(iter(added)) if added else (0, 0)  # an earlier call's, or the (0, 0) key
        expected = []
        for a, b in zip(h1.tolist(), h2.tolist(), strict=True):
            expected.append((a, b) in added)
            added.add((a, b))
        assert seen.claim(h1, h2).tolist() == expected
    assert len(seen) == len(added)


def test_long_fields_on_the_csv_module_path_in_parallel_ranges(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges on the csv-module path at once (an open quote in each), each with fields over the csv
    module's default limit throughout: no thread may restore the limit while another parses."""
    monkeypatch.setattr(segments, "_workers", lambda ranges: 4)
    huge = "x" * 140_000
    rows = []
    for i in range(8000):
        if i % 1000 == 0:
            rows.append(f'c{i},new,"open,,')
        elif i % 50 == 0:
            rows.append(f"c{i},new,{huge}@example.com,,")
        else:
            rows.append(f"c{i},new,u{i}@example.com,,")
    out = load(tmp_path, HEADER + "\n".join(rows) + "\n", chunk_rows=1000)
    reasons = collections.Counter(r["reason"] for r in out["rejects"])
    assert reasons == {"malformed_quotes": 8, "field_too_long": 152}
    assert out["summary"]["valid"] == 8000 - 160


def test_the_same_segment_file_gives_byte_identical_customers_parquet(tmp_path):
    """Hosts recognise each other's seeding by the file's CRC-32 (docs/multi-host.md: Segments on each host)."""
    import zlib

    from tasks.campaign import segments
    from tasks.config import PROJECT_ROOT, SAMPLE_SEGMENTS

    crcs = set()
    for host in ("a", "b"):
        segments.load_segments(PROJECT_ROOT / SAMPLE_SEGMENTS, tmp_path / host)
        crcs.add(zlib.crc32((tmp_path / host / segments.CUSTOMERS_FILE).read_bytes()))
    assert len(crcs) == 1
