#!/usr/bin/env python3
"""Independent, held-out-style PII test-set generator (standard library only):
written by a second author who never read src/pii, to check the detectors
beyond their own author's set (make_pii_set.py).

Writes JSONL: {"text": ..., "labels": [{"kind", "start", "end"}]} with character
offsets.  Written without reference to the detector's implementation.

Usage: python3 tests/reference/make_pii_set_independent.py OUT.jsonl [--seed N] [--n 400]
"""
import argparse
import json
import random
import re
import sys
import unicodedata

KINDS = {"ssn", "payment_card", "iban", "nhs_number", "national_insurance",
         "email", "phone", "date_of_birth", "ip_address"}


# --------------------------------------------------------------------------
# document builder: text is concatenated, label offsets recorded as we go
# --------------------------------------------------------------------------
class Doc:
    def __init__(self, genre):
        self.genre = genre
        self.parts = []
        self.labels = []
        self.pos = 0

    def add(self, *items):
        """items: plain str, or (kind, value) tuple for a labelled identifier."""
        for it in items:
            if isinstance(it, tuple):
                kind, value = it
                assert kind in KINDS, kind
                assert value and value == value.strip(), repr(value)
                self.labels.append({"kind": kind, "start": self.pos,
                                    "end": self.pos + len(value), "_v": value})
                self.parts.append(value)
                self.pos += len(value)
            else:
                self.parts.append(it)
                self.pos += len(it)
        return self

    def line(self, *items):
        items = list(items)
        if items and isinstance(items[-1], str):
            items[-1] = items[-1].rstrip(" \t")
        self.add(*items)
        self.add("\n")
        return self

    def blank(self):
        self.add("\n")

    def finish(self):
        text = "".join(self.parts).rstrip("\n") + "\n"
        # self-check: offsets, whitespace hygiene
        for lab in self.labels:
            got = text[lab["start"]:lab["end"]]
            if got != lab["_v"]:
                raise SystemExit("LABEL OFFSET MISMATCH in %s: %r != %r"
                                 % (self.genre, got, lab["_v"]))
        for i, ln in enumerate(text.split("\n")):
            if ln != ln.rstrip(" \t"):
                raise SystemExit("trailing whitespace in %s line %d: %r" % (self.genre, i, ln))
        if "\r" in text or "\n\n\n" in text:
            raise SystemExit("CR or triple newline in %s" % self.genre)
        labs = sorted(self.labels, key=lambda l: l["start"])
        for a, b in zip(labs, labs[1:]):
            if b["start"] < a["end"]:
                raise SystemExit("overlapping labels in %s" % self.genre)
        return {"text": text,
                "labels": [{"kind": l["kind"], "start": l["start"], "end": l["end"]} for l in labs],
                "genre": self.genre}


# --------------------------------------------------------------------------
# identifier generators (valid) and near-miss negatives (invalid)
# --------------------------------------------------------------------------
def digits(r, n):
    return "".join(r.choice("0123456789") for _ in range(n))


def luhn_ok(num):
    s = 0
    for i, ch in enumerate(reversed(num)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return s % 10 == 0


def luhn_complete(partial):
    for c in "0123456789":
        if luhn_ok(partial + c):
            return partial + c
    raise AssertionError


def fmt_card(r, num, style=None):
    style = style or r.choice([" ", " ", " ", "-", ""])
    if len(num) == 15:  # Amex 4-6-5
        groups = [num[:4], num[4:10], num[10:]]
    else:
        groups = [num[i:i + 4] for i in range(0, len(num), 4)]
    return style.join(groups)


def card_number(r):
    brand = r.choice(["visa", "visa", "mc", "mc2", "amex", "discover"])
    if brand == "visa":
        pre, n = "4" + digits(r, 1), 16
    elif brand == "mc":
        pre, n = str(r.randint(51, 55)), 16
    elif brand == "mc2":
        pre, n = str(r.randint(2221, 2720)), 16
    elif brand == "amex":
        pre, n = r.choice(["34", "37"]), 15
    else:
        pre, n = "6011", 16
    num = luhn_complete(pre + digits(r, n - len(pre) - 1))
    assert luhn_ok(num)
    return brand, num


def card(r, style=None):
    return fmt_card(r, card_number(r)[1], style)


def bad_card(r, style=None):
    _, num = card_number(r)
    i = r.randrange(len(num) - 4, len(num))
    bad = num[:i] + str((int(num[i]) + r.randint(1, 9)) % 10) + num[i + 1:]
    assert not luhn_ok(bad)
    return fmt_card(r, bad, style)


def ssn_parts(r):
    area = r.randint(1, 899)
    while area == 666:
        area = r.randint(1, 899)
    return "%03d" % area, "%02d" % r.randint(1, 99), "%04d" % r.randint(1, 9999)


def ssn(r, style="-"):
    a, g, s = ssn_parts(r)
    return {"-": f"{a}-{g}-{s}", " ": f"{a} {g} {s}", "": f"{a}{g}{s}"}[style]


def bad_ssn(r):
    a, g, s = ssn_parts(r)
    k = r.randint(0, 4)
    if k == 0:
        a = "000"
    elif k == 1:
        a = "666"
    elif k == 2:
        a = str(r.randint(900, 999))
    elif k == 3:
        g = "00"
    else:
        s = "0000"
    return f"{a}-{g}-{s}"


def itin(r):
    return f"9{digits(r, 2)}-{r.randint(70, 88)}-{digits(r, 4)}"


def nhs_number(r, sep=" "):
    while True:
        base = r.choice("467") + digits(r, 8)
        tot = sum(int(d) * w for d, w in zip(base, range(10, 1, -1)))
        chk = 11 - tot % 11
        if chk == 11:
            chk = 0
        if chk == 10:
            continue
        n = base + str(chk)
        return sep.join([n[:3], n[3:6], n[6:]])


def nhs_valid(n):
    n = re.sub(r"\D", "", n)
    if len(n) != 10:
        return False
    tot = sum(int(d) * w for d, w in zip(n[:9], range(10, 1, -1)))
    chk = 11 - tot % 11
    chk = 0 if chk == 11 else chk
    return chk != 10 and chk == int(n[9])


def bad_nhs(r, sep=" "):
    while True:
        n = r.choice("3456789") + digits(r, 9)
        if not nhs_valid(n):
            return sep.join([n[:3], n[3:6], n[6:]])


NINO_BAD_PAIRS = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def nino(r, style=None):
    first = [c for c in "ABCEGHJKLMNOPRSTWXYZ"]
    second = [c for c in "ABCEGHJKLMNPRSTWXYZ"]
    while True:
        p = r.choice(first) + r.choice(second)
        if p not in NINO_BAD_PAIRS:
            break
    d = digits(r, 6)
    suf = r.choice("ABCD")
    style = style if style is not None else r.choice(["sp", "sp", "compact", "compact", "sp2"])
    if style == "sp":
        return f"{p} {d[:2]} {d[2:4]} {d[4:]} {suf}"
    if style == "sp2":
        return f"{p}{d[:2]} {d[2:4]} {d[4:]}{suf}"
    return f"{p}{d}{suf}"


def bad_nino(r):
    p = r.choice(["QQ", "GB", "TN", "DA", "FY", "ZZ", "NK", "VQ"])
    d = digits(r, 6)
    suf = r.choice("ABCD")
    return r.choice([f"{p} {d[:2]} {d[2:4]} {d[4:]} {suf}", f"{p}{d}{suf}"])


# ---- IBAN -----------------------------------------------------------------
def _num(s):
    return int("".join(str(int(c, 36)) for c in s))


def iban_check(cc, bban):
    cd = 98 - _num(bban + cc + "00") % 97
    return f"{cc}{cd:02d}{bban}"


def iban_valid(i):
    i = i.replace(" ", "")
    return _num(i[4:] + i[:4]) % 97 == 1


IT_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]


def _it_cin(s):
    tot = 0
    for i, ch in enumerate(s):
        v = int(ch) if ch.isdigit() else ord(ch) - 65
        tot += IT_ODD[v] if i % 2 == 0 else v
    return chr(65 + tot % 26)


def _es_dc(d, w):
    t = 11 - sum(int(a) * b for a, b in zip(d, w)) % 11
    return {11: 0, 10: 1}.get(t, t)


def bban(r, cc):
    if cc == "GB":
        return r.choice(["NWBK", "BARC", "LOYD", "HBUK", "MIDL", "NAIA"]) + digits(r, 14)
    if cc == "IE":
        return r.choice(["AIBK", "BOFI", "IPBS"]) + digits(r, 14)
    if cc == "DE":
        return digits(r, 18)
    if cc == "NL":
        return r.choice(["ABNA", "INGB", "RABO", "TRIO", "SNSB"]) + digits(r, 10)
    if cc == "FR":
        b, g, a = digits(r, 5), digits(r, 5), digits(r, 11)
        key = 97 - ((89 * int(b) + 15 * int(g) + 3 * int(a)) % 97)
        return f"{b}{g}{a}{key:02d}"
    if cc == "ES":
        bk, br, ac = digits(r, 4), digits(r, 4), digits(r, 10)
        d1 = _es_dc(bk + br, [4, 8, 5, 10, 9, 7, 3, 6])
        d2 = _es_dc(ac, [1, 2, 4, 8, 5, 10, 9, 7, 3, 6])
        return f"{bk}{br}{d1}{d2}{ac}"
    if cc == "IT":
        rest = digits(r, 5) + digits(r, 5) + digits(r, 12)
        return _it_cin(rest) + rest
    if cc == "BE":
        base = digits(r, 10)
        c = int(base) % 97 or 97
        return f"{base}{c:02d}"
    if cc == "CH":
        return digits(r, 17)
    raise ValueError(cc)


IBAN_LEN = {"GB": 22, "IE": 22, "DE": 22, "NL": 18, "FR": 27, "ES": 24, "IT": 27, "BE": 16, "CH": 21}


def fmt_iban(r, ib, printed=None):
    if printed is None:
        printed = r.random() < 0.65
    if printed:
        return " ".join(ib[i:i + 4] for i in range(0, len(ib), 4))
    return ib


def iban(r, cc=None, printed=None):
    cc = cc or r.choice(list(IBAN_LEN))
    ib = iban_check(cc, bban(r, cc))
    assert len(ib) == IBAN_LEN[cc] and iban_valid(ib), ib
    return fmt_iban(r, ib, printed)


def bad_iban(r, cc=None, printed=None):
    cc = cc or r.choice(list(IBAN_LEN))
    ib = iban_check(cc, bban(r, cc))
    cd = int(ib[2:4])
    new = cd
    while new == cd:
        new = r.randint(2, 98)
    ib = f"{cc}{new:02d}{ib[4:]}"
    assert not iban_valid(ib)
    return fmt_iban(r, ib, printed)


# ---- names / e-mail ---------------------------------------------------------
FIRST = ["James", "Olivia", "Mohammed", "Amelia", "Priya", "Chen", "Siobhán", "José", "Zoë",
         "Tomasz", "Aisha", "Liam", "Fatima", "Oliver", "Grace", "Hiroshi", "Emeka", "Sophie",
         "Daniel", "Maria", "Noah", "Ava", "Ethan", "Isla", "Raj", "Ewa", "Lucas", "Chloé",
         "Ahmed", "Hannah", "Kwame", "Ingrid", "Margaret", "Robert", "Dorothy", "Gareth"]
LAST = ["Smith", "Jones", "Patel", "O'Brien", "Müller", "García", "Nowak", "Khan", "Williams",
        "Brown", "Taylor", "Nguyen", "Okafor", "Dubois", "Rossi", "Van der Berg", "MacLeod",
        "Evans", "Hughes", "Kowalski", "Johnson", "Martinez", "Lee", "Wright", "Thompson",
        "Ahmed", "Fitzgerald", "Schneider", "Moreau", "Hernández", "Price", "Davies"]
PERSONAL_DOMAINS = ["gmail.com", "outlook.com", "yahoo.co.uk", "btinternet.com", "hotmail.com",
                    "proton.me", "icloud.com", "sky.com", "web.de", "orange.fr", "aol.com"]
WORK_DOMAINS = ["contoso.com", "acme-logistics.co.uk", "mail.cardiff.ac.uk", "northwind-health.org",
                "fabrikam.io", "globex-corp.com", "uni.ox.ac.uk", "stmarys.nhs.uk", "nhs.net",
                "hr.initech.com", "eu.wayne-enterprises.com", "lettings.homes4u.co.uk",
                "shelter-trust.org", "bristol-gp.nhs.uk"]


def ascii_fold(s):
    s = unicodedata.normalize("NFKD", s)
    return "".join(c for c in s if c.isascii() and (c.isalnum())).lower()


def person(r):
    return r.choice(FIRST), r.choice(LAST)


def email_for(r, first, last, work=None):
    f, l = ascii_fold(first), ascii_fold(last)
    dom = r.choice(WORK_DOMAINS if (work if work is not None else r.random() < 0.5) else PERSONAL_DOMAINS)
    k = r.randint(0, 7)
    if k == 0:
        local = f"{f}.{l}"
    elif k == 1:
        local = f"{f}.{l}+{r.choice(['billing', 'hr', 'shop', '2024', 'newsletter', 'nhs'])}"
    elif k == 2:
        local = f"{f[0]}{l}{r.randint(1, 99)}"
    elif k == 3:
        local = f"{f}_{l}"
    elif k == 4:
        local = f"{f}-{l}"
    elif k == 5:
        local = f"{f[0]}.{l}"
    elif k == 6:
        local = f"{l}.{f}{r.randint(60, 99)}"
    else:
        local = f"{f}{l[0]}"
    return f"{local}@{dom}"


def role_email(r, role, dom=None):
    return f"{role}@{dom or r.choice(WORK_DOMAINS)}"


# ---- phones ---------------------------------------------------------------
def uk_phone(r, kind=None):
    kind = kind or r.choice(["mob", "mob", "lon", "geo", "intl_mob", "intl_lon", "intl0"])
    if kind == "mob":
        a, b = "07" + str(r.randint(400, 999)), digits(r, 6)
        return r.choice([f"{a} {b}", f"{a} {b[:3]} {b[3:]}"])
    if kind == "lon":
        return f"020 {r.choice('378')}{digits(r, 3)} {digits(r, 4)}"
    if kind == "geo":
        if r.random() < 0.15:
            return f"029 20{digits(r, 2)} {digits(r, 4)}"
        code = r.choice(["0161", "0121", "0113", "0117", "0131", "0141", "0151", "0114", "0115", "0191", "0118"])
        return r.choice([f"{code} {digits(r, 3)} {digits(r, 4)}", f"({code}) {digits(r, 3)} {digits(r, 4)}"])
    if kind == "intl_mob":
        return f"+44 7{r.randint(400, 999)} {digits(r, 3)} {digits(r, 3)}"
    if kind == "intl_lon":
        return f"+44 20 {r.choice('378')}{digits(r, 3)} {digits(r, 4)}"
    return f"+44 (0)20 {r.choice('378')}{digits(r, 3)} {digits(r, 4)}"


US_AREAS = [212, 415, 617, 312, 206, 303, 512, 646, 718, 404, 305, 213, 702, 919, 503]


def us_phone(r):
    a = r.choice(US_AREAS)
    ex = r.randint(201, 989)
    ln = digits(r, 4)
    k = r.randint(0, 4)
    return [f"({a}) {ex}-{ln}", f"{a}-{ex}-{ln}", f"+1 {a} {ex} {ln}", f"{a}.{ex}.{ln}",
            f"+1 ({a}) {ex}-{ln}"][k]


def fr_phone(r):
    lead = r.choice("1234567")
    p = [digits(r, 2) for _ in range(4)]
    return r.choice([f"+33 {lead} {' '.join(p)}", f"0{lead} {' '.join(p)}", f"+33 (0){lead} {' '.join(p)}"])


def de_phone(r):
    def local(n):
        return str(r.randint(1, 9)) + digits(r, n - 1)
    k = r.randint(0, 3)
    if k == 0:
        return f"+49 30 {local(7)}"
    if k == 1:
        return f"+49 (0)89 {local(8)}"
    if k == 2:
        return f"+49 {r.choice(['151', '160', '170', '176'])} {local(7)}"
    return f"0{r.choice(['30', '40', '69', '221'])} {local(7)}"


def any_phone(r, region=None):
    region = region or r.choice(["uk", "uk", "us", "us", "fr", "de"])
    return {"uk": uk_phone, "us": us_phone, "fr": fr_phone, "de": de_phone}[region](r)


# ---- dates ----------------------------------------------------------------
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def rand_date(r, y0, y1):
    y = r.randint(y0, y1)
    m = r.randint(1, 12)
    d = r.randint(1, 28)
    return y, m, d


def fmt_date(r, ymd, style=None):
    y, m, d = ymd
    style = style or r.choice(["dmy/", "dmy/", "iso", "long", "us_long", "dmy.", "d-mon-y"])
    return {
        "dmy/": f"{d:02d}/{m:02d}/{y}",
        "mdy/": f"{m:02d}/{d:02d}/{y}",
        "iso": f"{y}-{m:02d}-{d:02d}",
        "long": f"{d} {MONTHS[m - 1]} {y}",
        "us_long": f"{MONTHS[m - 1]} {d}, {y}",
        "dmy.": f"{d:02d}.{m:02d}.{y}",
        "d-mon-y": f"{d:02d}-{MONTHS[m - 1][:3]}-{y}",
    }[style]


def dob(r, style=None):
    return fmt_date(r, rand_date(r, 1936, 2005), style)


def recent(r, style=None, y0=2022, y1=2025):
    return fmt_date(r, rand_date(r, y0, y1), style)


# ---- IP -------------------------------------------------------------------
def ipv4(r):
    k = r.randint(0, 5)
    if k == 0:
        return f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
    if k == 1:
        return f"192.168.{r.randint(0, 255)}.{r.randint(1, 254)}"
    if k == 2:
        return f"172.{r.randint(16, 31)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
    if k == 3:
        return r.choice(["203.0.113.", "198.51.100.", "192.0.2."]) + str(r.randint(1, 254))
    a = r.choice([x for x in range(11, 223) if x not in (127, 172, 192, 100)])
    return f"{a}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"


def ipv6(r):
    g = ["%x" % r.randint(0, 0xffff) for _ in range(8)]
    k = r.randint(0, 3)
    if k == 0:
        return ":".join(["2001", "db8"] + g[2:])
    if k == 1:
        return f"2001:db8:{g[2]}::{g[6]}:{g[7]}"
    if k == 2:
        return f"2a02:{g[1]}:{g[2]}:{g[3]}::{r.randint(1, 255):x}"
    return f"fe80::{g[4]}:{g[5]}:{g[6]}:{g[7]}"


# ---- negatives ------------------------------------------------------------
def isbn13(r):
    base = "978" + r.choice("01") + digits(r, 8)
    s = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(base))
    c = (10 - s % 10) % 10
    return f"{base[:3]}-{base[3]}-{base[4:8]}-{base[8:]}-{c}"


def ean13(r):
    base = "50" + digits(r, 10)
    s = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(base))
    return base + str((10 - s % 10) % 10)


def version(r):
    k = r.randint(0, 4)
    if k == 0:
        return f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}.{r.randint(0, 99)}"
    if k == 1:
        return f"version 10.0.{r.randint(0, 9)}.{r.randint(1, 254)}"
    if k == 2:
        return f"build {r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 9)}.{r.randint(100, 999)}"
    if k == 3:
        return f"firmware {r.randint(1, 6)}.{r.randint(0, 12)}.{r.randint(0, 40)}.{r.randint(1, 200)}"
    return f"v{r.randint(1, 4)}.{r.randint(0, 9)}.{r.randint(0, 9)}"


def uk_postcode(r):
    return r.choice(["SW1A 1AA", "M1 1AE", "EC1A 1BB", "LS6 2AB", "CF10 2BU", "BS1 4DJ", "B33 8TH",
                     "CR2 6XH", "DN55 1PT", "G2 3DL", "E14 5AB", "NW3 2QG", "OX1 3PN", "EH1 1YZ"])


def money(r, cur="£", lo=5, hi=9000):
    v = r.uniform(lo, hi)
    return f"{cur}{v:,.2f}"


def time_s(r):
    return f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"


def mac(r):
    return ":".join("%02x" % r.randint(0, 255) for _ in range(6))


def order_no(r):
    return r.choice([f"ORD-{r.randint(2022, 2025)}-{digits(r, 6)}", f"#{nonluhn(r, 10)}",
                     f"A-{digits(r, 6)}", f"{digits(r, 3)}-{digits(r, 7)}-{digits(r, 7)}"])


def invoice_no(r):
    return r.choice([f"INV-{r.randint(2022, 2025)}-{digits(r, 5)}", f"INV{digits(r, 7)}",
                     f"{r.randint(2022, 2025)}/{digits(r, 4)}"])


def tracking(r):
    k = r.randint(0, 2)
    if k == 0:
        return "1Z" + "".join(r.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(6)) + digits(r, 10)
    if k == 1:
        d = "9400" + digits(r, 18)
        return " ".join(d[i:i + 4] for i in range(0, 22, 4))
    return r.choice(["AB", "RR", "JD", "LX"]) + digits(r, 9) + "GB"


def nonluhn(r, n):
    """digit run of length n that fails Luhn, so it cannot be mistaken for a card number"""
    while True:
        x = digits(r, n)
        if not luhn_ok(x):
            return x


def pick(r, seq):
    return r.choice(seq)


def maybe(r, p=0.5):
    return r.random() < p


# --------------------------------------------------------------------------
# genres
# --------------------------------------------------------------------------
HOSPITALS = ["Leeds Teaching Hospitals", "North Bristol", "Cardiff and Vale", "Royal Free London",
             "Manchester University", "Oxford University Hospitals", "Sheffield Teaching Hospitals"]
NHS_LABELS = ["NHS No:", "NHS Number:", "NHS no.", "NHS #", "NHS number", "NHS No."]
DOB_LABELS = ["D.O.B.:", "DOB:", "Date of Birth:", "Date of birth:", "Birthdate:", "Born:", "DoB"]
SSN_LABELS = ["SSN:", "Social Security No.:", "SS#:", "Soc Sec Number:", "Social Security Number:",
              "SSN", "Social security #"]
NI_LABELS = ["N.I. number:", "NINO:", "National Insurance number:", "NI No:", "NI number",
             "National Insurance No."]
PHONE_LABELS = ["Tel:", "Telephone:", "Tel.", "Mob.", "Mobile:", "Phone:", "T:", "M:", "Ph:", "Cell:"]


def g_discharge(r):
    d = Doc("discharge_summary")
    f, l = person(r)
    d.line(f"{pick(r, HOSPITALS)} NHS Foundation Trust")
    d.line(pick(r, ["DISCHARGE SUMMARY", "Inpatient Discharge Summary", "DISCHARGE LETTER"]))
    d.blank()
    d.line(f"Patient: {l.upper()}, {f}")
    hosp_no = pick(r, [f"RX{digits(r, 7)}", f"K{digits(r, 6)}", f"MRN {digits(r, 8)}"])
    if maybe(r):
        d.line(pick(r, NHS_LABELS), " ", ("nhs_number", nhs_number(r)), f"    Hospital No: {hosp_no}")
    else:
        d.line(f"Hospital No: {hosp_no}    ", pick(r, NHS_LABELS), " ", ("nhs_number", nhs_number(r)))
    age = r.randint(19, 88)
    d.line(pick(r, DOB_LABELS), " ", ("date_of_birth", dob(r, pick(r, ["dmy/", "long", "dmy.", "d-mon-y"]))),
           f" (Age {age})    Sex: {pick(r, ['F', 'M'])}")
    d.line(f"Address: {r.randint(1, 220)} {pick(r, ['Elm Road', 'Church Lane', 'Station Road', 'Victoria St'])}, {uk_postcode(r)}")
    adm = rand_date(r, 2023, 2025)
    disc = (adm[0], adm[1], min(adm[2] + r.randint(1, 9), 28))
    d.line(f"Admission date: {fmt_date(r, adm, 'dmy/')}    Discharge date: {fmt_date(r, disc, 'dmy/')}")
    d.line(f"Consultant: Dr {pick(r, LAST)} ({pick(r, ['Cardiology', 'Respiratory', 'General Surgery', 'Care of the Elderly'])})")
    d.line("Ward: ", f"Ward {r.randint(1, 40)} (", pick(r, ["Tel ", "ward phone ", "Tel: "]), ("phone", uk_phone(r, "geo")),
           f" ext. {digits(r, 4)})")
    d.blank()
    d.line("Presenting complaint: " + pick(r, [
        "central chest pain radiating to left arm, onset 2 hours prior to arrival.",
        "shortness of breath and productive cough for 5 days.",
        "fall at home with right hip pain, unable to weight bear.",
        "confusion and reduced oral intake over 48 hours."]))
    d.line(f"Past medical history: T2DM (diagnosed {r.randint(1995, 2015)}), hypertension, "
           f"CABG on {fmt_date(r, rand_date(r, 1990, 2012), 'dmy/')}.")
    d.line(f"Investigations: Hb {r.randint(95, 160)} g/L, WCC {r.uniform(3, 18):.1f}, CRP {r.randint(1, 250)}, "
           f"eGFR {r.randint(20, 90)} mL/min/1.73m2, Na {r.randint(128, 146)}, K {r.uniform(3.1, 5.6):.1f}, "
           f"troponin {r.randint(3, 900)} ng/L at {time_s(r)[:5]}.")
    d.line(f"Lab accession: {bad_nhs(r)}    Imaging ref: RAD-{digits(r, 6)}")
    d.line(f"Observations on discharge: BP {r.randint(100, 160)}/{r.randint(60, 95)}, HR {r.randint(55, 100)}, "
           f"SpO2 {r.randint(93, 99)}% on air, temp {r.uniform(36.1, 37.8):.1f}C.")
    d.line("Medications on discharge: " + ", ".join(r.sample([
        "Apixaban 5 mg BD", "Ramipril 2.5 mg OD", "Atorvastatin 80 mg ON", "Bisoprolol 1.25 mg OD",
        "Metformin 500 mg BD", "Paracetamol 1 g QDS PRN", "Amoxicillin 500 mg TDS for 5 days"], 3)))
    d.blank()
    d.line(f"Follow-up: outpatient clinic on {recent(r, 'long', 2024, 2025)} at {r.randint(9, 16)}:{pick(r, ['00', '15', '30', '45'])}.")
    gpf, gpl = person(r)
    d.line(f"GP: Dr {gpf} {gpl}, {pick(r, ['The Meadows Surgery', 'Riverside Medical Centre', 'Park Lane Practice'])}")
    d.line(pick(r, ["Tel: ", "Telephone: "]), ("phone", uk_phone(r, pick(r, ["geo", "lon"]))),
           "  Fax: ", ("phone", uk_phone(r, pick(r, ["geo", "lon"]))))
    if maybe(r, 0.6):
        nf, nl = person(r)
        d.line(f"Next of kin: {nf} {nl} ({pick(r, ['wife', 'husband', 'daughter', 'son', 'partner'])}), ",
               pick(r, ["Mob. ", "Mobile ", "tel "]), ("phone", uk_phone(r, "mob")))
    if maybe(r, 0.4):
        d.line("Secure e-mail for queries: ", ("email", role_email(r, pick(r, ["cardiology.secretaries", "discharge-team", "ward12"]), pick(r, ["nhs.net", "stmarys.nhs.uk"]))))
    d.line(f"Document generated {recent(r, 'dmy/')} {time_s(r)} by EPR {version(r)}")
    return d


def g_gp_letter(r):
    d = Doc("gp_letter")
    surgery = pick(r, ["The Meadows Surgery", "Riverside Medical Centre", "Park Lane Practice", "Castle Street Health Centre"])
    d.line(surgery)
    d.line(f"{r.randint(1, 99)} High Street, {pick(r, ['Bristol', 'Leeds', 'York', 'Cardiff'])} {uk_postcode(r)}")
    d.line(pick(r, ["Tel: ", "Telephone: ", "T: "]), ("phone", uk_phone(r, "geo")), "   Fax: ", ("phone", uk_phone(r, "geo")))
    d.line("Email: ", ("email", role_email(r, pick(r, ["meadows.surgery", "reception.riverside", "admin.parklane"]), pick(r, ["nhs.net", "bristol-gp.nhs.uk"]))))
    d.blank()
    d.line(f"Date: {recent(r, 'long', 2024, 2025)}")
    d.blank()
    d.line(f"Dear Dr {pick(r, LAST)},")
    d.blank()
    f, l = person(r)
    title = pick(r, ["Mrs", "Mr", "Ms", "Miss"])
    k = r.randint(0, 2)
    if k == 0:
        d.line(f"Re: {title} {f} {l}, born ", ("date_of_birth", dob(r, pick(r, ["long", "dmy/"]))), ", NHS number ",
               ("nhs_number", nhs_number(r)))
    elif k == 1:
        d.line(f"Re: {title} {f} {l.upper()}   ", pick(r, ["DOB ", "D.O.B. "]), ("date_of_birth", dob(r, "dmy/")),
               "   ", pick(r, ["NHS No ", "NHS "]), ("nhs_number", nhs_number(r)))
    else:
        d.line(f"Re: {title} {f} {l}")
        d.line("Date of birth: ", ("date_of_birth", dob(r)))
        d.line("NHS Number: ", ("nhs_number", nhs_number(r, pick(r, [" ", " ", ""]))))
    d.line(f"Address: Flat {r.randint(1, 30)}, {r.randint(1, 200)} {pick(r, ['Mill Lane', 'Kings Road', 'Albert Terrace'])}, {uk_postcode(r)}")
    d.blank()
    age = r.randint(25, 85)
    d.line(f"Thank you for seeing this {age}-year-old {pick(r, ['woman', 'man'])} who presents with "
           f"{pick(r, ['worsening exertional breathlessness', 'intermittent palpitations', 'a 3-month history of weight loss', 'recurrent headaches'])}.")
    d.line(f"Her HbA1c was {r.randint(38, 90)} mmol/mol on {recent(r, 'dmy/')} and BP today is {r.randint(120, 170)}/{r.randint(70, 100)}. "
           f"Cholesterol {r.uniform(3.5, 7.5):.1f} mmol/L, ratio {r.uniform(2.5, 6):.1f}.")
    d.line(f"She was last reviewed in clinic on {recent(r, pick(r, ['long', 'dmy/']))}; an ECG on {recent(r, 'dmy.')} showed sinus rhythm at {r.randint(60, 110)} bpm.")
    if maybe(r, 0.7):
        d.line("She can be contacted on her mobile ", ("phone", uk_phone(r, pick(r, ["mob", "intl_mob"]))),
               pick(r, [" or by e-mail at ", " or at "]), ("email", email_for(r, f, l, False)), ".")
    if maybe(r, 0.3):
        d.line(f"Please note her previous NHS record under the old number {bad_nhs(r)} has been merged.")
    d.blank()
    d.line("Yours sincerely,")
    d.blank()
    gf, gl = person(r)
    d.line(f"Dr {gf} {gl} MBChB MRCGP")
    d.line(f"GMC {digits(r, 7)}    Practice code {pick(r, 'ABCDLMY')}{digits(r, 5)}")
    return d


def g_lab(r):
    d = Doc("lab_results")
    d.line(pick(r, ["PATHOLOGY REPORT", "CLINICAL BIOCHEMISTRY - RESULTS", "Haematology Report"]) + f"        Lab No: {digits(r, 2)}B{digits(r, 7)}")
    f, l = person(r)
    d.line(f"Surname: {l.upper()}    Forename: {f.upper()}")
    dl = pick(r, ["DOB:", "D.O.B.", "Date of Birth:", "Birth date:"])
    d.line(dl, " ", ("date_of_birth", dob(r, pick(r, ["dmy.", "dmy/", "iso", "d-mon-y"]))), f"    Sex: {pick(r, ['F', 'M'])}    ",
           pick(r, ["NHS:", "NHS No:", "NHS Number:"]), " ", ("nhs_number", nhs_number(r)))
    d.line(f"Requested by: Dr {pick(r, LAST)} ({pick(r, ['The Meadows Surgery', 'Ward 7', 'Diabetes Clinic'])})")
    c = rand_date(r, 2023, 2025)
    d.line(f"Collected: {fmt_date(r, c, 'dmy/')} {time_s(r)[:5]}    Received: {fmt_date(r, c, 'dmy/')} {time_s(r)[:5]}    "
           f"Reported: {fmt_date(r, c, 'dmy/')} {time_s(r)[:5]}")
    d.blank()
    d.line(f"{'Test':<22}{'Result':<10}{'Units':<16}Reference range")
    tests = [("Haemoglobin", f"{r.randint(95, 170)}", "g/L", "115 - 165"),
             ("White cell count", f"{r.uniform(3, 15):.1f}", "10^9/L", "4.0 - 11.0"),
             ("Platelets", f"{r.randint(120, 480)}", "10^9/L", "150 - 400"),
             ("Sodium", f"{r.randint(128, 148)}", "mmol/L", "133 - 146"),
             ("Potassium", f"{r.uniform(3.0, 5.9):.1f}", "mmol/L", "3.5 - 5.3"),
             ("Creatinine", f"{r.randint(45, 300)}", "umol/L", "45 - 84"),
             ("eGFR", f"{r.randint(15, 90)}", "mL/min/1.73m2", ">90"),
             ("HbA1c", f"{r.randint(30, 100)}", "mmol/mol", "20 - 41"),
             ("TSH", f"{r.uniform(0.1, 8):.2f}", "mU/L", "0.27 - 4.20"),
             ("Ferritin", f"{r.randint(5, 600)}", "ug/L", "13 - 150")]
    for t in r.sample(tests, r.randint(4, 8)):
        d.line(f"{t[0]:<22}{t[1]:<10}{t[2]:<16}{t[3]}")
    d.blank()
    d.line(f"Specimen barcode: {bad_card(r, ' ')}    Analyser: Cobas {version(r)}")
    if maybe(r, 0.5):
        d.line(f"Comment: Sample haemolysed; repeat requested. Previous result on {recent(r, 'dmy/')}: {r.randint(3, 7)}.{r.randint(0, 9)}")
    d.line("Enquiries: ", pick(r, ["Tel ", "Telephone ", "Ph "]), ("phone", uk_phone(r, pick(r, ["geo", "lon"]))),
           f" ext {digits(r, 4)}   Authorised by {pick(r, FIRST)[0]}. {pick(r, LAST)}, BMS")
    return d


def g_hr_onboarding(r):
    d = Doc("hr_onboarding")
    co = pick(r, ["GLOBEX CORPORATION", "Initech, Inc.", "Acme Logistics USA", "Wayne Enterprises"])
    d.line(f"{co} - NEW HIRE ONBOARDING FORM (rev. {version(r).split(' ')[-1]})")
    d.blank()
    d.line("Section 1: Employee information")
    f, l = person(r)
    d.line(f"Legal name: {f} {l}")
    sl = pick(r, SSN_LABELS)
    style = pick(r, ["-", "-", "-", " ", ""])
    d.line(sl, " ", ("ssn", ssn(r, style)))
    k = r.randint(0, 2)
    dl = pick(r, ["Date of Birth:", "Birthdate:", "DOB:", "D.O.B.:"])
    d.line(dl, " ", ("date_of_birth", dob(r, pick(r, ["mdy/", "us_long", "iso"]))))
    d.line(pick(r, ["Home phone: ", "Phone: ", "Telephone: "]), ("phone", us_phone(r)),
           "    ", pick(r, ["Mobile: ", "Cell: ", "Mob. "]), ("phone", us_phone(r)))
    d.line(pick(r, ["Personal e-mail: ", "Email: ", "Personal email: "]), ("email", email_for(r, f, l, False)))
    d.line(f"Address: {r.randint(100, 9999)} {pick(r, ['Market St', 'Oak Ave', 'Elm Street', 'Pine Rd'])}, Apt {r.randint(1, 40)}, "
           f"{pick(r, ['San Francisco, CA 94103-1234', 'Austin, TX 78701', 'Boston, MA 02116', 'Seattle, WA 98101-3045'])}")
    d.blank()
    d.line("Section 2: Employment")
    d.line(f"Employee ID: E-{digits(r, 5)}    Start date: {recent(r, 'mdy/')}    Department: {pick(r, ['Finance', 'Engineering', 'Sales', 'Warehouse'])}")
    d.line(f"Annual salary: ${r.randint(38, 190)},{r.randint(0, 9)}00.00    Pay grade: {pick(r, 'ABCDE')}{r.randint(1, 9)}    FLSA: {pick(r, ['Exempt', 'Non-exempt'])}")
    d.line(f"Work e-mail (assigned): ", ("email", f"{ascii_fold(f)}.{ascii_fold(l)}@{pick(r, ['globex-corp.com', 'hr.initech.com', 'eu.wayne-enterprises.com'])}"))
    d.blank()
    d.line("Section 3: Direct deposit")
    d.line(f"Bank: {pick(r, ['Chase', 'Wells Fargo', 'Bank of America', 'Citibank'])}    Routing number: {pick(r, ['021000021', '121000248', '026009593', '322271627'])}    "
           f"Account number: {nonluhn(r, 12)}")
    d.line(f"Account type: {pick(r, ['Checking', 'Savings'])}    Allocation: 100%")
    d.blank()
    d.line("Section 4: Emergency contact")
    ef, el = person(r)
    d.line(f"Name: {ef} {el}    Relationship: {pick(r, ['Spouse', 'Parent', 'Sibling', 'Friend'])}")
    d.line(pick(r, ["Phone: ", "Tel: ", "Daytime phone: "]), ("phone", us_phone(r)))
    d.blank()
    d.line("Section 5: Verification")
    if maybe(r, 0.4):
        d.line(f"Note: prior record used placeholder SSN {bad_ssn(r)}; corrected above.")
    if maybe(r, 0.3):
        d.line(f"Dependent {pick(r, FIRST)} holds ITIN {itin(r)} (not an SSN).")
    d.line(f"I-9 completed on {recent(r, 'mdy/')} by HR (", ("email", role_email(r, pick(r, ["hr-onboarding", "people.ops", "benefits"]), pick(r, ["globex-corp.com", "hr.initech.com"]))), ")")
    d.line(f"Form HR-114 {version(r)}    Page 1 of 2    Printed {recent(r, 'mdy/')} {time_s(r)}")
    return d


def g_payroll(r):
    d = Doc("payroll_export")
    region = pick(r, ["us", "uk", "eu"])
    sep = pick(r, [",", ",", "|", "\t", "table"])
    n = r.randint(3, 9)
    dstyle = pick(r, ["iso", "dmy/", "mdy/" if region == "us" else "dmy."])
    pay_date = recent(r, dstyle)
    d.line(f"# payroll export {pick(r, ['generated', 'run'])} {recent(r, 'iso')} {time_s(r)} period={recent(r, 'iso')[:7]}")
    if region == "us":
        cols = ["emp_id", "last_name", "first_name", pick(r, ["ssn", "SSN", "soc_sec_no", "SS#"]),
                pick(r, ["dob", "DOB", "birth_date", "Date of Birth"]), "pay_date", "gross", "fed_tax", "net", "email"]
        kinds = [None, None, None, "ssn", "date_of_birth", None, None, None, None, "email"]
    elif region == "uk":
        cols = ["EmpNo", "Surname", "Forename", pick(r, ["NINO", "NI Number", "NI_No"]), pick(r, ["DOB", "Date of Birth", "BirthDate"]),
                "TaxCode", "PayDate", "Gross", "PAYE", "NIC", "Net", pick(r, ["IBAN", "Account (IBAN)", "BankIBAN"])]
        kinds = [None, None, None, "national_insurance", "date_of_birth", None, None, None, None, None, None, "iban"]
    else:
        cols = ["PersNr", "Name", pick(r, ["Geburtsdatum (DOB)", "date_of_birth", "Birthdate"]), "Eintritt", "Brutto", "Netto",
                pick(r, ["IBAN", "Account (IBAN)"]), "Telefon"]
        kinds = [None, None, "date_of_birth", None, None, None, "iban", "phone"]
    ib_printed = maybe(r, 0.3)
    nino_style = pick(r, ["sp", "compact", "compact"])
    ssn_style = pick(r, ["-", "-", ""])
    totals = [0.0, 0.0]

    def cell_values():
        f, l = person(r)
        gross = r.uniform(900, 9800)
        tax = gross * r.uniform(0.1, 0.3)
        net = gross - tax
        totals[0] += gross
        totals[1] += net
        if region == "us":
            return [f"{r.randint(10000, 99999)}", l, f, ("ssn", ssn(r, ssn_style)), ("date_of_birth", dob(r, dstyle)),
                    pay_date, f"{gross:.2f}", f"{tax:.2f}", f"{net:.2f}", ("email", email_for(r, f, l, True))]
        if region == "uk":
            nic = gross * 0.08
            return [f"{r.randint(1000, 9999)}", l, f, ("national_insurance", nino(r, nino_style)), ("date_of_birth", dob(r, dstyle)),
                    pick(r, ["1257L", "BR", "1257L M1", "K475", "D0"]), pay_date, f"{gross:.2f}", f"{tax:.2f}", f"{nic:.2f}",
                    f"{net - nic:.2f}", ("iban", iban(r, pick(r, ["GB", "GB", "IE"]), ib_printed))]
        return [f"{r.randint(100000, 999999)}", f"{l}, {f}", ("date_of_birth", dob(r, dstyle)), recent(r, dstyle, 2010, 2024),
                f"{gross:.2f}", f"{net:.2f}", ("iban", iban(r, pick(r, ["DE", "FR", "NL", "BE", "ES", "IT", "CH"]), ib_printed)),
                ("phone", pick(r, [de_phone, fr_phone])(r))]

    rows = [cell_values() for _ in range(n)]
    if sep == "table":
        d.line("| " + " | ".join(cols) + " |")
        d.line("|" + "|".join("---" for _ in cols) + "|")
        for row in rows:
            items = ["| "]
            for i, c in enumerate(row):
                if i:
                    items.append(" | ")
                items.append(c)
            items.append(" |")
            d.line(*items)
    else:
        d.line(sep.join(cols))
        for row in rows:
            items = []
            for i, c in enumerate(row):
                if i:
                    items.append(sep)
                if sep == "," and isinstance(c, str) and "," in c:
                    c = '"' + c + '"'
                items.append(c)
            d.line(*items)
    # totals / control rows (negatives: long numbers)
    blank_cells = len(cols) - 3
    s = sep if sep != "table" else " | "
    d.line(("| " if sep == "table" else "") + "TOTAL" + s * blank_cells + f"{totals[0]:.2f}" + s + f"{totals[1]:.2f}" + (" |" if sep == "table" else ""))
    d.line(f"# control total {int(totals[0] * 100):d}  hash {nonluhn(r, 16 if maybe(r) else 12)}  rows={n}  batch {digits(r, 9)}")
    if maybe(r, 0.35):
        if region == "us":
            d.line(f"# rejected row: emp 4{digits(r, 4)} ssn={bad_ssn(r)} (invalid)")
        elif region == "uk":
            d.line(f"# rejected row: emp {digits(r, 4)} NINO {bad_nino(r)} (invalid prefix), IBAN {bad_iban(r, 'GB')} (check digits)")
        else:
            d.line(f"# rejected row: PersNr {digits(r, 6)} IBAN {bad_iban(r)} (Pruefziffer falsch)")
    return d


def g_insurance(r):
    d = Doc("insurance_claim")
    us = maybe(r, 0.6)
    d.line(pick(r, ["CLAIM FORM - Northwind Mutual Insurance", "First Notice of Loss", "Motor Claim Notification"]))
    d.line(f"Policy number: NW-POL-{digits(r, 8)}    Claim number: CLM-{r.randint(2022, 2025)}-{digits(r, 7)}")
    d.blank()
    f, l = person(r)
    d.line(f"Policyholder: {f} {l}")
    d.line(pick(r, ["Date of birth: ", "DOB: ", "Born: ", "Birthdate: "]),
           ("date_of_birth", dob(r, pick(r, ["mdy/", "us_long"]) if us else pick(r, ["dmy/", "long"]))))
    if us:
        d.line(pick(r, SSN_LABELS), " ", ("ssn", ssn(r, pick(r, ["-", "-", " "]))))
        d.line(f"Member ID: {pick(r, 'WXYZ')}{digits(r, 9)}    Group no.: {digits(r, 6)}")
    else:
        d.line(pick(r, NI_LABELS), " ", ("national_insurance", nino(r)))
    d.line(pick(r, ["Contact telephone: ", "Phone: ", "Daytime tel: "]), ("phone", us_phone(r) if us else uk_phone(r)))
    d.line(pick(r, ["Email: ", "E-mail address: "]), ("email", email_for(r, f, l)))
    d.blank()
    inc = recent(r, "mdy/" if us else "dmy/")
    d.line(f"Date of incident: {inc}    Time: {time_s(r)[:5]}    Reported: {recent(r, 'iso')}")
    d.line(f"Location: {pick(r, ['I-280 southbound near exit 27', 'car park, Tesco Extra, Cardiff', 'junction of Oak Ave and 5th St', 'M6 J19'])}")
    d.line(f"Vehicle: {pick(r, ['2019 Honda Civic', '2021 Ford Focus', '2016 VW Golf'])}, VIN {pick(r, ['1HGCM82633A004352', 'WVWZZZ1KZAW000123', 'JH4KA7561PC008269'])}, "
           f"odometer {r.randint(10000, 160000):,} miles")
    d.line(f"Description: third party reversed into insured vehicle. Estimated repair cost {money(r, '$' if us else '£', 300, 9000)} "
           f"(estimate no. {digits(r, 6)}, {r.randint(2, 40)} labour hours).")
    tf, tl = person(r)
    d.line(f"Third party: {tf} {tl}, ", pick(r, ["tel. ", "phone ", "mobile "]), ("phone", us_phone(r) if us else uk_phone(r)),
           f", insurer ref {pick(r, 'ABCXYZ')}{digits(r, 8)}")
    d.blank()
    k = r.randint(0, 2)
    if k == 0:
        d.line(pick(r, ["Excess to be paid by card: ", "Card number: ", "Payment card: "]), ("payment_card", card(r)),
               f"  exp {r.randint(1, 12):02d}/{r.randint(25, 30)}")
    elif k == 1:
        d.line(f"Settlement to account (IBAN): ", ("iban", iban(r, None if not us else pick(r, ["GB", "DE"]))))
    else:
        d.line(f"Excess paid on {pick(r, ['Visa', 'Mastercard', 'Amex'])} ending {digits(r, 4)} on {recent(r, 'iso')}.")
    if maybe(r, 0.3):
        d.line(f"Previous claim {digits(r, 9)} closed {recent(r, 'iso', 2015, 2021)}; card on file {bad_card(r)} was declined (invalid number).")
    d.line(f"Declaration signed {recent(r, 'long')}. Ref {digits(r, 4)}-{digits(r, 4)}-{digits(r, 4)}")
    return d


def g_email_thread(r):
    d = Doc("email_thread")
    f, l = person(r)
    me = email_for(r, f, l, True)
    payroll = role_email(r, pick(r, ["payroll", "hr", "accounts-payable", "finance.ops"]))
    d.line(f"From: {f} {l} <", ("email", me), ">")
    d.line(f"Sent: {pick(r, ['Tuesday', 'Monday', 'Friday'])}, {recent(r, 'long')} {r.randint(8, 18)}:{r.randint(10, 59)}")
    d.line("To: ", ("email", payroll))
    if maybe(r, 0.5):
        cf, cl = person(r)
        d.line(f"Cc: {cf} {cl} <", ("email", email_for(r, cf, cl, True)), ">")
    topic = pick(r, ["bank", "ssn", "nino", "phone", "card"])
    d.line("Subject: RE: " + {"bank": "Updated bank details for next payroll", "ssn": "W-4 and SSN correction",
                              "nino": "Starter checklist - NI number", "phone": "Change of contact details",
                              "card": "Corporate card replacement"}[topic])
    d.blank()
    d.line(f"Hi {pick(r, ['team', 'all', 'Sarah', 'Tom'])},")
    d.blank()
    if topic == "bank":
        d.line(f"Please update my bank details before the {r.randint(20, 28)}th. New account (IBAN): ",
               ("iban", iban(r, pick(r, ["GB", "IE", "DE", "NL", "FR"]))))
        d.line(f"The old one ({bad_iban(r, 'GB')}) was rejected by the bank because the check digits are wrong, so please discard it.")
    elif topic == "ssn":
        d.line(f"My W-4 had a typo. The correct Social Security number is ", ("ssn", ssn(r)),
               f" (not {bad_ssn(r)} as on the form).")
        d.line("My date of birth is ", ("date_of_birth", dob(r, pick(r, ["mdy/", "us_long"]))), " in case you need it to match records.")
    elif topic == "nino":
        d.line("My National Insurance number is ", ("national_insurance", nino(r)), f" and my P45 is attached (tax code 1257L, ref {digits(r, 3)}/{pick(r, 'ABCDEFG')}{digits(r, 5)}).")
        d.line("Born ", ("date_of_birth", dob(r, pick(r, ["long", "dmy/"]))), f", started on {recent(r, 'long')}.")
    elif topic == "phone":
        d.line("My new mobile is ", ("phone", any_phone(r)), " and home is ", ("phone", any_phone(r)), ".")
        d.line(f"The old number should be removed. Order {order_no(r)} for the new handset is attached.")
    else:
        d.line("The replacement card arrived: ", ("payment_card", card(r)),
               f", expiry {r.randint(1, 12):02d}/{r.randint(26, 30)}. Please cancel the old one ending {digits(r, 4)}.")
    d.line(f"Ticket ref: HR-{r.randint(2023, 2025)}-{digits(r, 4)}. Meeting @ {r.randint(1, 5)}pm if needed.")
    d.blank()
    d.line("Thanks,")
    d.line(f)
    d.blank()
    d.line(f"{f} {l} | {pick(r, ['Senior Analyst', 'Operations Manager', 'Staff Nurse', 'Account Executive'])}")
    d.line(f"{pick(r, ['Contoso Ltd', 'Acme Logistics', 'Fabrikam'])} | {r.randint(1, 99)} {pick(r, ['Canada Square', 'King Street', 'Broad Quay'])}, {uk_postcode(r)}")
    sig = r.randint(0, 2)
    if sig == 0:
        d.line("T: ", ("phone", uk_phone(r, pick(r, ["intl_lon", "lon", "intl0"]))), " | M: ", ("phone", uk_phone(r, pick(r, ["mob", "intl_mob"]))))
    elif sig == 1:
        d.line("Tel ", ("phone", any_phone(r)), "  Fax ", ("phone", any_phone(r)))
    else:
        d.line("Direct: ", ("phone", any_phone(r)))
    d.line(("email", me), f" | www.{me.split('@')[1]}")
    d.line(f"[logo@2x.png]  Registered in England No. {digits(r, 8)}. VAT GB {digits(r, 3)} {digits(r, 4)} {digits(r, 2)}")
    d.blank()
    d.line("-----Original Message-----")
    d.line("From: Payroll <", ("email", payroll), ">")
    d.line(f"Sent: {recent(r, 'long')} 17:{r.randint(10, 59)}")
    d.line(f"Subject: Starter checklist / payroll cut-off {recent(r, 'dmy/')}")
    d.blank()
    d.line(f"Cut-off is {recent(r, 'long')}. Payslips for batch {digits(r, 9)} will be issued on {recent(r, 'dmy/')}. "
           f"Call the payroll desk on ", ("phone", uk_phone(r, pick(r, ["geo", "lon"]))), " with questions.")
    return d


def g_incident(r):
    d = Doc("it_incident")
    d.line(f"INCIDENT REPORT INC{digits(r, 7)}")
    t0 = recent(r, "iso")
    d.line(f"Severity: P{r.randint(1, 3)}    Opened: {t0} {time_s(r)} UTC    Status: {pick(r, ['Resolved', 'Monitoring', 'Open'])}")
    rf, rl = person(r)
    d.line("Reporter: ", ("email", email_for(r, rf, rl, True)), f"    Assignee: SecOps ({pick(r, ['team', 'rota'])} {digits(r, 3)})")
    attacker = ipv4(r)
    d.line("Summary: credential stuffing against /api/v2/login from ", ("ip_address", attacker),
           f" and {r.randint(3, 40)} other hosts; {r.randint(100, 90000):,} attempts in {r.randint(2, 59)} minutes.")
    h1, h2 = ipv4(r), ipv4(r)
    v6 = ipv6(r)
    d.line(f"Affected hosts: web-{r.randint(1, 9):02d} (", ("ip_address", h1), f"), db-{r.randint(1, 9):02d} (",
           ("ip_address", h2), ", ", ("ip_address", v6), ")")
    d.line(f"Software: nginx 1.{r.randint(18, 26)}.{r.randint(0, 3)}, OpenSSL 3.0.{r.randint(1, 14)}, app {version(r)}, agent {version(r)}")
    d.line(f"Related: CVE-{r.randint(2021, 2025)}-{digits(r, 4)}; change CHG{digits(r, 7)}; SNMP OID 1.3.6.1.4.1.{r.randint(1000, 60000)}.10.1.3.1")
    d.blank()
    d.line("Log excerpt:")
    day = r.randint(10, 28)
    for _ in range(r.randint(2, 4)):
        ts = time_s(r)
        ip = attacker if maybe(r) else ipv4(r)
        d.line(("ip_address", ip), f" - - [{day}/Mar/2024:{ts} +0000] \"POST /api/v2/login HTTP/1.1\" {pick(r, ['401', '403', '429'])} "
               f"{r.randint(100, 900)} \"-\" \"python-requests/2.{r.randint(20, 32)}.0\"")
    u = email_for(r, *person(r), True)
    d.line(f"2024-03-{day}T{time_s(r)}.{digits(r, 3)}Z WARN auth[{r.randint(100, 9999)}]: failed login user=", ("email", u),
           " src=", ("ip_address", ipv4(r)), f" port={r.randint(1024, 65535)}")
    d.line(f"2024-03-{day}T{time_s(r)}.{digits(r, 3)}Z INFO sshd[{r.randint(100, 9999)}]: Accepted publickey for deploy from ",
           ("ip_address", ipv6(r)), f" port {r.randint(1024, 65535)} ssh2")
    d.line(f"2024-03-{day}T{time_s(r)}.{digits(r, 3)}Z INFO dhcpd: DHCPACK on ", ("ip_address", ipv4(r)), f" to {mac(r)} via eth{r.randint(0, 3)}")
    d.line(f"2024-03-{day}T{time_s(r)}.{digits(r, 3)}Z DEBUG worker: job {digits(r, 10)} took {r.randint(1, 900)}ms ratio {r.randint(1, 9)}:{r.randint(1, 9)} "
           f"(lib {version(r)})")
    d.blank()
    d.line(f"Actions: blocked the source range at WAF (rule {r.randint(1000, 9999)}); rotated keys; "
           f"forced reset for {r.randint(2, 60)} accounts. Window {time_s(r)}-{time_s(r)}.")
    d.line("On-call: ", ("phone", any_phone(r, pick(r, ["uk", "us"]))), f" (bridge PIN {digits(r, 6)}#)")
    return d


def g_bank_transfer(r):
    d = Doc("bank_transfer")
    eu = maybe(r, 0.6)
    d.line(pick(r, ["PAYMENT CONFIRMATION", "SEPA Credit Transfer - Confirmation", "Transfer receipt"]))
    ex = recent(r, "dmy." if eu else "dmy/")
    d.line(f"Transaction ID: TXN{nonluhn(r, 10)}    Execution date: {ex}    Value date: {ex}")
    f, l = person(r)
    d.line(f"Debtor: {f} {l}")
    cc1 = pick(r, ["DE", "FR", "NL", "BE", "ES", "IT", "CH"]) if eu else pick(r, ["GB", "IE"])
    d.line(pick(r, ["Debtor account (IBAN): ", "From IBAN: ", "Account (IBAN): ", "IBAN: "]), ("iban", iban(r, cc1)))
    d.line(f"BIC: {pick(r, ['COBADEFFXXX', 'BNPAFRPP', 'INGBNL2A', 'NWBKGB2L', 'AIBKIE2D', 'BBVAESMM'])}")
    d.line(f"Creditor: {pick(r, ['Hausverwaltung Schmidt GmbH', 'EDF Energie SA', 'Acme Logistics Ltd', 'Studio Rossi srl'])}")
    cc2 = pick(r, list(IBAN_LEN))
    d.line(pick(r, ["Creditor IBAN: ", "To account (IBAN): ", "Beneficiary IBAN: "]), ("iban", iban(r, cc2)))
    cur = "EUR" if eu else "GBP"
    amt = r.uniform(20, 20000)
    d.line(f"Amount: {cur} {amt:,.2f}    Fee: {cur} 0.00    FX rate: {r.uniform(0.8, 1.3):.4f}")
    d.line(f"Remittance information: Invoice {invoice_no(r)}, customer no. {digits(r, 8)}, order {order_no(r)}")
    d.line(f"End-to-end ID: E2E{nonluhn(r, 14)}    Mandate ref: MNDT-{digits(r, 6)}")
    if maybe(r, 0.5):
        d.line(f"Fee card: {pick(r, ['Visa', 'Mastercard'])} ending {digits(r, 4)} (**** **** **** {digits(r, 4)})")
    if maybe(r, 0.35):
        d.line(f"A previous attempt to {bad_iban(r)} was returned: invalid IBAN (checksum).")
    d.blank()
    d.line(pick(r, ["Questions? Call ", "Service line: "]), ("phone", de_phone(r) if eu and maybe(r) else (fr_phone(r) if eu else uk_phone(r))),
           " or write to ", ("email", role_email(r, pick(r, ["service", "kundenservice", "support"]), pick(r, ["bank.de", "banque-exemple.fr", "mybank.co.uk"]))), ".")
    d.line(f"Page 1/1    Generated {recent(r, 'iso')} {time_s(r)}    Form {version(r)}")
    return d


def g_chat(r):
    d = Doc("support_chat")
    d.line(f"Chat transcript - Case #{digits(r, 8)}    Channel: web    Started {recent(r, 'long')}")
    h, m = r.randint(8, 20), r.randint(0, 40)
    sec = [r.randint(0, 59)]

    def ts():
        sec[0] += r.randint(8, 50)
        return f"[{h:02d}:{m + sec[0] // 60:02d}:{sec[0] % 60:02d}]"

    agent = pick(r, ["Sam", "Priya", "Jordan", "Alex"])
    f, l = person(r)
    d.line(f"{ts()} Agent ({agent}): Hi, thanks for contacting Fabrikam Support. How can I help?")
    d.line(f"{ts()} Customer: hi i was charged twice for order {order_no(r)} on {recent(r, 'dmy/')}")
    d.line(f"{ts()} Agent ({agent}): Sorry to hear that. Can you confirm the email address on the account?")
    d.line(f"{ts()} Customer: its ", ("email", email_for(r, f, l, False)))
    if maybe(r, 0.7):
        d.line(f"{ts()} Agent ({agent}): Thanks. For security, what's your date of birth?")
        d.line(f"{ts()} Customer: ", ("date_of_birth", dob(r, pick(r, ["dmy/", "long", "us_long", "mdy/"]))))
    k = r.randint(0, 3)
    if k <= 1:
        d.line(f"{ts()} Customer: the card is ", ("payment_card", card(r)), pick(r, [" visa", "", " if that helps"]))
        d.line(f"{ts()} Agent ({agent}): Please don't share full card numbers in chat. Refund ref RF-{digits(r, 4)}-{digits(r, 4)} will show in 3-5 days.")
    elif k == 2:
        d.line(f"{ts()} Customer: I paid with the card ending {digits(r, 4)}, tracking {tracking(r)}")
        d.line(f"{ts()} Agent ({agent}): Found it - the duplicate of {money(r, '£', 10, 400)} is reversed.")
    else:
        d.line(f"{ts()} Customer: i typed {bad_card(r, '')} but it said invalid card number?")
        d.line(f"{ts()} Agent ({agent}): That number fails validation, please re-check it on the card.")
    if maybe(r, 0.7):
        d.line(f"{ts()} Customer: ok. call me on ", ("phone", any_phone(r)), " if needed")
    if maybe(r, 0.3):
        d.line(f"{ts()} Customer: also my IP keeps getting blocked, it's ", ("ip_address", ipv4(r)))
    d.line(f"{ts()} Agent ({agent}): Done. Your case number is {digits(r, 9)}. Anything else?")
    d.line(f"{ts()} Customer: no thanks, app version {version(r).split(' ')[-1]}")
    d.line(f"-- chat closed {time_s(r)} -- CSAT {r.randint(1, 5)}/5")
    return d


def g_tenancy(r):
    d = Doc("tenancy_application")
    d.line(pick(r, ["TENANCY APPLICATION FORM - Homes4U Lettings", "Rental Application", "Tenant Referencing Form"]))
    d.line(f"Property: Flat {r.randint(1, 20)}, {r.randint(1, 150)} {pick(r, ['Queen St', 'Cathedral Rd', 'Gloucester Pl'])}, {uk_postcode(r)}    "
           f"Rent: £{r.randint(600, 2400):,} pcm    Deposit: £{r.randint(700, 2800):,}")
    d.line(f"Proposed move-in date: {recent(r, pick(r, ['dmy/', 'long']))}    Term: {pick(r, ['6', '12', '24'])} months")
    d.blank()
    for a in range(1, r.randint(1, 2) + 1):
        f, l = person(r)
        d.line(f"Applicant {a}")
        d.line(f"Full name: {f} {l}")
        d.line(pick(r, ["Date of birth: ", "D.O.B.: ", "DOB: ", "Birthdate: "]), ("date_of_birth", dob(r, pick(r, ["dmy/", "long", "dmy."]))))
        d.line(pick(r, NI_LABELS), " ", ("national_insurance", nino(r)))
        d.line(pick(r, ["Mobile: ", "Mob. ", "Tel: "]), ("phone", uk_phone(r, pick(r, ["mob", "intl_mob"]))),
               "    Email: ", ("email", email_for(r, f, l, False)))
        d.line(f"Current address: {r.randint(1, 99)} {pick(r, ['Hill Rd', 'Park Ave', 'Mill St'])}, {uk_postcode(r)} (since {r.randint(2015, 2023)})")
        d.line(f"Employer: {pick(r, ['Acme Logistics', 'NHS Wales', 'Contoso Ltd', 'Self-employed'])}    Salary: £{r.randint(18, 95)},{r.randint(0, 9)}00 p.a.")
        pf, pl = person(r)
        d.line(f"Previous landlord: {pf} {pl}, ", pick(r, ["tel ", "phone ", "Telephone: "]), ("phone", uk_phone(r)))
        d.line(f"Right to rent share code: {pick(r, 'ABCW')}{digits(r, 1)}X {digits(r, 1)}KP 2LM")
        d.blank()
    if maybe(r, 0.6):
        d.line("Rent will be paid from account (IBAN) ", ("iban", iban(r, "GB")), f" - sort code {digits(r, 2)}-{digits(r, 2)}-{digits(r, 2)}")
    else:
        d.line(f"Rent will be paid by standing order from sort code {digits(r, 2)}-{digits(r, 2)}-{digits(r, 2)}, account {digits(r, 8)}.")
    d.line(f"Holding deposit £{r.randint(100, 500)} received {recent(r, 'dmy/')} ref HD{digits(r, 6)}. "
           f"(Example NI format on form: {bad_nino(r)})")
    d.line(f"Signed: ____________    Date: {recent(r, 'dmy/')}")
    return d


def g_invoice(r):
    """mostly negatives: numbers that resemble identifiers"""
    d = Doc("invoice")
    d.line(pick(r, ["INVOICE", "Tax Invoice", "Rechnung / Invoice"]))
    d.line(f"Invoice no: {invoice_no(r)}    Invoice date: {recent(r, pick(r, ['dmy/', 'long', 'iso']))}    Due: {recent(r, 'dmy/')}")
    d.line(f"Customer no: {digits(r, 8)}    PO: PO-{digits(r, 6)}    Order: {order_no(r)}")
    d.line(f"Ship to: {pick(r, ['Unit 4, Trident Park', '12 Dock Rd', 'Warehouse 9'])}, {uk_postcode(r)}    Tracking: {tracking(r)}")
    d.blank()
    d.line(f"{'SKU':<14}{'Description':<34}{'Qty':>5}{'Unit':>11}{'Total':>12}")
    tot = 0.0
    for _ in range(r.randint(3, 7)):
        k = r.randint(0, 2)
        if k == 0:
            sku, desc = isbn13(r), pick(r, ["Clinical Medicine, 10th ed.", "Rust in Action", "Tax Handbook 2024/25"])
        elif k == 1:
            sku, desc = f"{pick(r, ['HX', 'KB', 'PL'])}-{digits(r, 4)}-{pick(r, 'ABC')}", pick(r, ["Nitrile gloves (box 100)", "A4 paper 80gsm", "USB-C cable 2m"])
        else:
            sku, desc = ean13(r), pick(r, ["Toner cartridge", "Sharps bin 5L", "Label roll"])
        q = r.randint(1, 250)
        u = r.uniform(0.5, 300)
        tot += q * u
        d.line(f"{sku:<14}{desc:<34}{q:>5}{u:>11.2f}{q * u:>12.2f}")
    d.line(f"{'':<53}Subtotal {tot:>12,.2f}")
    d.line(f"{'':<53}VAT 20%  {tot * 0.2:>12,.2f}")
    d.line(f"{'':<53}TOTAL    {tot * 1.2:>12,.2f}")
    d.blank()
    d.line(f"Company No. {digits(r, 8)}    VAT No. GB {digits(r, 3)} {digits(r, 4)} {digits(r, 2)}    EORI GB{digits(r, 12)}")
    if maybe(r, 0.7):
        d.line("Pay to IBAN ", ("iban", iban(r, pick(r, ["GB", "DE", "NL", "IE"]))),
               f"  BIC {pick(r, ['NWBKGB2L', 'INGBNL2A', 'COBADEFFXXX'])}  quoting {invoice_no(r)}")
    else:
        d.line(f"Pay by BACS to sort code {digits(r, 2)}-{digits(r, 2)}-{digits(r, 2)} account {digits(r, 8)} quoting {invoice_no(r)}")
    d.line("Accounts: ", ("phone", any_phone(r)), " / ", ("email", role_email(r, pick(r, ["accounts", "billing", "ar"]))))
    d.line(f"Terms: 30 days. Late payments accrue 8% over base. Ref {digits(r, 3)}-{digits(r, 2)}-{digits(r, 4)}")
    return d


def g_release_notes(r):
    """negatives only (plus a contact e-mail)"""
    d = Doc("release_notes")
    d.line(f"Release notes - {pick(r, ['Orion Gateway', 'Helix EPR', 'NetSentry Agent'])} {version(r)}")
    d.line(f"Released {recent(r, 'long')} (build {digits(r, 6)}, commit {''.join(r.choice('0123456789abcdef') for _ in range(12))})")
    d.blank()
    d.line("Changes")
    for _ in range(r.randint(3, 6)):
        d.line("- " + pick(r, [
            f"Upgraded OpenSSL to 3.0.{r.randint(1, 14)} and zlib to 1.3.{r.randint(0, 1)}.",
            f"Fixed crash when parsing timestamps like {time_s(r)} or {recent(r, 'iso')}T{time_s(r)}Z.",
            f"Default listen port is now {r.randint(1024, 9999)} on all interfaces; see section 4.1.2.{r.randint(1, 9)}.",
            f"Agent {version(r)} is required; older {version(r)} is deprecated.",
            f"Barcode scanner accepts EAN {ean13(r)} and ISBN {isbn13(r)}.",
            f"MIB updated (OID 1.3.6.1.2.1.{r.randint(1, 99)}.{r.randint(1, 9)}.0).",
            f"Performance: p99 latency {r.randint(10, 99)}.{r.randint(0, 9)} ms at {r.randint(1000, 90000):,} req/s.",
            f"Ticket {pick(r, ['JIRA', 'OPS', 'SEC'])}-{digits(r, 5)}: fixed rounding of amounts like 1,234,567.89.",
            f"Test fixtures now use invalid card {bad_card(r)} and invalid SSN {bad_ssn(r)}.",
            f"Sample NHS-like number {bad_nhs(r)} (fails modulus 11) is rejected by validation.",
            f"MAC address filter accepts {mac(r)}.",
        ]))
    d.blank()
    d.line(f"Checksums (SHA-256): {''.join(r.choice('0123456789abcdef') for _ in range(64))}")
    d.line("Support: ", ("email", role_email(r, pick(r, ["support", "release-team", "noreply"]), pick(r, ["fabrikam.io", "contoso.com"]))))
    return d


def g_crm_record(r):
    """key: value / JSON-ish customer record export with mixed identifiers"""
    d = Doc("crm_export")
    f, l = person(r)
    js = maybe(r, 0.5)
    items = [("customer_id", f"C{digits(r, 8)}"), ("name", f"{f} {l}")]
    items.append(("email", ("email", email_for(r, f, l))))
    items.append(("phone", ("phone", any_phone(r))))
    items.append(("date_of_birth" if maybe(r) else "dob", ("date_of_birth", dob(r, "iso"))))
    items.append(("created_at", f"{recent(r, 'iso')}T{time_s(r)}Z"))
    items.append(("last_login_ip", ("ip_address", ipv4(r) if maybe(r, 0.7) else ipv6(r))))
    k = r.randint(0, 3)
    if k == 0:
        items.append(("ssn", ("ssn", ssn(r))))
    elif k == 1:
        items.append(("ni_number", ("national_insurance", nino(r))))
    elif k == 2:
        items.append(("nhs_number", ("nhs_number", nhs_number(r))))
    else:
        items.append(("iban", ("iban", iban(r, printed=False))))
    items.append(("loyalty_card", nonluhn(r, 12)))
    items.append(("last_order", order_no(r)))
    items.append(("lifetime_value", f"{r.uniform(0, 50000):.2f}"))
    items.append(("app_version", version(r).split(" ")[-1]))
    if js:
        d.line("{")
        for i, (k_, v) in enumerate(items):
            comma = "," if i < len(items) - 1 else ""
            if isinstance(v, tuple):
                d.line(f'  "{k_}": "', v, f'"{comma}')
            else:
                d.line(f'  "{k_}": "{v}"{comma}')
        d.line("}")
    else:
        d.line(f"=== Customer record export {recent(r, 'iso')} ===")
        for k_, v in items:
            d.line(f"{k_}: ", v)
    return d


def g_referral_narrative(r):
    """free prose with identifiers and many non-birth dates"""
    d = Doc("social_care_note")
    f, l = person(r)
    d.line(f"Case note - {pick(r, ['Adult Social Care', 'Safeguarding Team', 'Community Mental Health'])}")
    d.line(f"Date of visit: {recent(r, 'long')}    Worker: {pick(r, FIRST)} {pick(r, LAST)}")
    d.blank()
    d.add(f"{f} {l} (", pick(r, ["born ", "b. ", "DOB "]), ("date_of_birth", dob(r, pick(r, ["long", "dmy/", "us_long"]))),
          pick(r, ["; NHS ", ", NHS no. "]), ("nhs_number", nhs_number(r)), ") was visited at home following a referral received on "
          f"{recent(r, 'dmy/')}. ")
    d.add(f"The referral (ref {digits(r, 4)}/{digits(r, 2)}) described falls on {recent(r, 'long')} and {recent(r, 'long')}. ")
    d.line(f"{pick(r, ['She', 'He'])} has lived at the address since {r.randint(1970, 2015)} and was widowed in {r.randint(1990, 2020)}.")
    d.add(f"Daughter ({pick(r, FIRST)}) can be reached on ", ("phone", uk_phone(r)), " or ",
          ("email", email_for(r, pick(r, FIRST), l, False)), ". ")
    d.line(f"Benefits: PIP award from {recent(r, 'dmy/', 2018, 2023)}, ", pick(r, ["NI number ", "National Insurance No. "]),
           ("national_insurance", nino(r)), ".")
    d.line(f"Medication: {pick(r, ['Donepezil 10 mg', 'Sertraline 50 mg', 'Levothyroxine 75 micrograms'])}, dosette box delivered every {r.randint(7, 28)} days. "
           f"Weight {r.randint(45, 110)}.{r.randint(0, 9)} kg, MUST score {r.randint(0, 3)}.")
    d.line(f"Next review: {recent(r, 'long', 2024, 2025)} at {r.randint(9, 16)}:00. Key safe code not recorded. Case {digits(r, 7)}.")
    return d


def g_hotel_booking(r):
    d = Doc("hotel_booking")
    d.line(pick(r, ["BOOKING CONFIRMATION", "Reservation confirmed", "Your stay at The Harbour Hotel"]))
    d.line(f"Confirmation no: {digits(r, 9)}    Booking ref: {''.join(r.choice('ABCDEFGHJKLMNPQRSTUVWXYZ') for _ in range(6))}")
    f, l = person(r)
    d.line(f"Guest: {pick(r, ['Mr', 'Ms', 'Dr'])} {f} {l}")
    d.line(pick(r, ["Email: ", "E-mail: "]), ("email", email_for(r, f, l, False)), "    ", pick(r, PHONE_LABELS), " ",
           ("phone", any_phone(r)))
    ci = rand_date(r, 2024, 2025)
    d.line(f"Check-in: {fmt_date(r, ci, pick(r, ['long', 'dmy/', 'us_long']))} from 15:00    Check-out: "
           f"{fmt_date(r, (ci[0], ci[1], min(ci[2] + r.randint(1, 6), 28)), 'long')} by 11:00")
    d.line(f"Room: {pick(r, ['Deluxe King', 'Twin Superior', 'Junior Suite'])}, {r.randint(1, 3)} adults, rate code {pick(r, ['BAR', 'AAA', 'CORP'])}{digits(r, 2)}")
    d.line(f"Total: {money(r, pick(r, ['£', '$', 'EUR ']), 90, 3000)} incl. VAT    Deposit taken: {money(r, '£', 20, 300)}")
    d.blank()
    k = r.randint(0, 3)
    lab = pick(r, ["Card number: ", "Card: ", "Guarantee card: ", "Payment card number: ", "Credit card: "])
    if k <= 2:
        brand, num = card_number(r)
        d.line(lab, ("payment_card", fmt_card(r, num)), f"    Expiry: {r.randint(1, 12):02d}/{r.randint(25, 31)}    Holder: {f[0]}. {l.upper()}")
    else:
        d.line(f"Guarantee: {pick(r, ['Visa', 'Mastercard', 'Amex'])} ending {digits(r, 4)} (XXXX-XXXX-XXXX-{digits(r, 4)})")
    if maybe(r, 0.35):
        d.line("Loyalty member since ", recent(r, "long", 2010, 2021), "; ", pick(r, ["date of birth ", "birthday on file: ", "DOB "]),
               ("date_of_birth", dob(r, pick(r, ["long", "dmy/", "iso"]))))
    d.line(f"Cancellation: free until {recent(r, 'long')} 23:59 local time. Policy {version(r)}")
    d.line("Hotel: ", ("phone", any_phone(r)), " | ", ("email", role_email(r, pick(r, ["reservations", "frontdesk", "stay"]), pick(r, ["harbourhotel.co.uk", "grand-palace.fr", "contoso.com"]))))
    return d


def g_fraud_case(r):
    d = Doc("card_fraud_case")
    d.line(f"FRAUD INVESTIGATION NOTES - case FR-{r.randint(2023, 2025)}-{digits(r, 5)}")
    f, l = person(r)
    d.line(f"Cardholder: {f} {l}    Customer since {r.randint(1995, 2020)}    Risk score {r.randint(1, 999)}")
    d.line(pick(r, ["Primary card: ", "Card number: ", "PAN: ", "Compromised card: "]), ("payment_card", card(r)),
           f"  (blocked {recent(r, 'dmy/')} {time_s(r)})")
    if maybe(r, 0.6):
        d.line(pick(r, ["Replacement card issued: ", "New card: ", "Secondary card: "]), ("payment_card", card(r)))
    d.line(pick(r, ["Contact: ", "Verified phone: "]), ("phone", any_phone(r)), "    ", ("email", email_for(r, f, l)))
    if maybe(r, 0.5):
        d.line(pick(r, ["Identity check - DOB: ", "ID&V date of birth: ", "Born: "]), ("date_of_birth", dob(r)))
    d.blank()
    d.line("Disputed transactions")
    sep = pick(r, [" | ", ","])
    d.line(sep.join(["Date", "Time", "Merchant", "MCC", "Amount", "Auth code", "ARN", "Source IP"]))
    for _ in range(r.randint(2, 5)):
        d.line(sep.join([recent(r, "iso"), time_s(r), pick(r, ["ONLINE-ELEC*STORE", "AMZN Mktp", "STEAM PURCHASE", "TESCO STORES 2281"]),
                         pick(r, ["5732", "5999", "5411", "5816"]), f"{r.uniform(5, 1500):.2f}", digits(r, 6),
                         nonluhn(r, 23)]) + sep, ("ip_address", ipv4(r) if maybe(r, 0.8) else ipv6(r)))
    d.blank()
    d.line(f"Merchant ID {nonluhn(r, 15)}, terminal {digits(r, 8)}. Chargeback filed under reason code {pick(r, ['10.4', '4837', '13.1'])}.")
    if maybe(r, 0.6):
        d.line(f"Fraudster attempted {bad_card(r)} and {bad_card(r)} (both fail Luhn) from the same device.")
    d.line(f"Last four on statement: {digits(r, 4)}. Analyst: {pick(r, FIRST)} (fraud-ops team), ext {digits(r, 4)}")
    return d


GENRES = [(g_discharge, 9), (g_gp_letter, 9), (g_lab, 8), (g_hr_onboarding, 9), (g_payroll, 10),
          (g_insurance, 8), (g_email_thread, 9), (g_incident, 9), (g_bank_transfer, 8), (g_chat, 8),
          (g_tenancy, 8), (g_invoice, 6), (g_release_notes, 4), (g_crm_record, 6), (g_referral_narrative, 6),
          (g_hotel_booking, 7), (g_fraud_case, 6)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--keep-genre", action="store_true", help="also write a 'genre' field")
    a = ap.parse_args()
    r = random.Random(a.seed)
    fns = [g for g, w in GENRES for _ in range(w)]
    counts = {}
    with open(a.out, "w", encoding="utf-8") as fh:
        for i in range(a.n):
            doc = r.choice(fns)(r).finish()
            for lab in doc["labels"]:
                counts[lab["kind"]] = counts.get(lab["kind"], 0) + 1
            if not a.keep_genre:
                doc.pop("genre")
            fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
    # re-read and verify once more from disk
    with open(a.out, encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            doc = json.loads(line)
            for lab in doc["labels"]:
                s = doc["text"][lab["start"]:lab["end"]]
                if not s or s != s.strip() or lab["kind"] not in KINDS:
                    raise SystemExit(f"bad label in doc {n}: {lab} {s!r}")
    print(f"wrote {a.n} docs to {a.out}; labels: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
          file=sys.stderr)


if __name__ == "__main__":
    main()
