#!/usr/bin/env python3
"""Builds a labelled test set for `enclave eval pii`: realistic documents
(clinical letters, referral faxes, invoices, HR forms, tables of figures)
with identifiers of every type inserted at known character offsets, valid
ones labelled, invalid-checksum variants and near-misses (order and invoice
numbers, ISBNs, version strings, meeting dates, amounts in tables) left
unlabelled: a detector that fires on them loses precision.

    tests/reference/make_pii_set.py OUT.jsonl [--docs N] [--seed S]

Each line: {"id", "template", "text", "labels": [{"kind", "start", "end"}]}
with character offsets into text. Deterministic for a seed.
"""
import argparse
import json
import random

FIRST = ["John", "Maria", "Aisha", "Tom", "Priya", "Lukas", "Chen", "Fatima", "Olga", "David"]
LAST = ["Smith", "Garcia", "Khan", "Müller", "Okafor", "Rossi", "Novak", "Brown", "Dubois", "Lee"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]


def luhn_digit(body):
    total = 0
    for i, d in enumerate(reversed(body)):
        d = int(d)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def card(r, valid=True):
    kind = r.choice(["visa", "mc", "amex"])
    if kind == "visa":
        body = "4" + "".join(r.choice("0123456789") for _ in range(14))
    elif kind == "mc":
        body = str(r.randint(51, 55)) + "".join(r.choice("0123456789") for _ in range(13))
    else:
        body = r.choice(["34", "37"]) + "".join(r.choice("0123456789") for _ in range(12))
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + r.randint(1, 9)) % 10)
    n = body + check
    sep = r.choice([" ", "-", ""])
    if len(n) == 15:
        return sep.join([n[:4], n[4:10], n[10:]])
    return sep.join(n[i:i + 4] for i in range(0, 16, 4))


def ssn(r, valid=True):
    if valid:
        area = r.choice([a for a in range(1, 900) if a != 666])
        group, serial = r.randint(1, 99), r.randint(1, 9999)
    else:
        area = r.choice([0, 666, r.randint(900, 999)])
        group, serial = r.randint(1, 99), r.randint(1, 9999)
    return f"{area:03d}-{group:02d}-{serial:04d}"


def iban(r, valid=True):
    country = r.choice(["GB", "DE", "FR", "NL"])
    if country == "GB":
        bban = "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + \
            "".join(r.choice("0123456789") for _ in range(14))
    elif country == "DE":
        bban = "".join(r.choice("0123456789") for _ in range(18))
    elif country == "FR":
        bban = "".join(r.choice("0123456789") for _ in range(23))
    else:
        bban = "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(4)) + \
            "".join(r.choice("0123456789") for _ in range(10))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check + r.randint(1, 90)) % 97 + 2
    s = f"{country}{check:02d}{bban}"
    if r.random() < 0.6:
        s = " ".join(s[i:i + 4] for i in range(0, len(s), 4))
    return s


def nhs(r, valid=True):
    while True:
        body = [r.randint(0, 9) for _ in range(9)]
        body[0] = r.choice([4, 6, 7])
        total = sum(d * (10 - i) for i, d in enumerate(body))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10:
            break
    if not valid:
        check = (check + r.randint(1, 9)) % 10
    n = "".join(map(str, body)) + str(check)
    return f"{n[:3]} {n[3:6]} {n[6:]}"


def nino(r):
    letters = "ABCEGHJKLMNPRSTWXYZ"
    while True:
        prefix = r.choice(letters) + r.choice(letters.replace("O", ""))
        if prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            break
    digits = "".join(r.choice("0123456789") for _ in range(6))
    suffix = r.choice("ABCD")
    if r.random() < 0.5:
        return f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
    return f"{prefix}{digits}{suffix}"


def email(r, first, last):
    domain = r.choice(["example.org", "mail.example.com", "clinic-north.example.net"])
    return f"{first.lower()}.{last.lower().replace('ü', 'u')}@{domain}"


def phone(r):
    return r.choice([
        f"+44 20 7946 0{r.randint(100, 999)}",
        f"020 7946 0{r.randint(100, 999)}",
        f"({r.randint(201, 989)}) {r.randint(200, 999)}-{r.randint(1000, 9999)}",
        f"+1 415 555 0{r.randint(100, 199)}",
        f"+49 30 {r.randint(1000000, 9999999)}",
    ])


def dob(r):
    y, m, d = r.randint(1930, 2005), r.randint(1, 12), r.randint(1, 28)
    return r.choice([f"{d:02d}/{m:02d}/{y}", f"{d} {MONTHS[m - 1]} {y}", f"{y}-{m:02d}-{d:02d}"])


def ip(r):
    return r.choice([
        f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}",
        f"192.168.{r.randint(0, 255)}.{r.randint(1, 254)}",
        f"2001:db8::{r.randint(1, 0xffff):x}:{r.randint(1, 0xffff):x}",
    ])


class Doc:
    def __init__(self):
        self.text, self.labels = "", []

    def add(self, s):
        self.text += s

    def pii(self, kind, value):
        start = len(self.text)
        self.text += value
        self.labels.append({"kind": kind, "start": start, "end": len(self.text)})


def clinical_letter(r):
    d, f, l = Doc(), r.choice(FIRST), r.choice(LAST)
    d.add(f"Northfield Clinic\nDepartment of Cardiology\n\nRe: {f} {l}\nDate of birth: ")
    d.pii("date_of_birth", dob(r))
    d.add("\nNHS No: ")
    d.pii("nhs_number", nhs(r))
    d.add(f"\n\nDear Dr {r.choice(LAST)},\n\nThank you for referring this patient, whom I saw in clinic on "
          f"{r.randint(1, 28)}/{r.randint(1, 12):02d}/2024. The echo showed normal function. "
          f"Please contact the ward on ")
    d.pii("phone", phone(r))
    d.add(" or by e-mail at ")
    d.pii("email", email(r, r.choice(FIRST), r.choice(LAST)))
    d.add(". Medication: bisoprolol 2.5 mg, review in 6 weeks.\n")
    if r.random() < 0.5:
        d.add("An old reference on file, NHS no. ")
        d.add(nhs(r, valid=False))  # invalid checksum: not labelled
        d.add(", was corrected.\n")
    return d


def referral_fax(r):
    d, f, l = Doc(), r.choice(FIRST), r.choice(LAST)
    d.add(f"FAX  {r.randint(1, 28):02d}/{r.randint(1, 12):02d}/2024 14:{r.randint(10, 59)}  P.001\n\n"
          f"Patient: {f} {l}\nDOB: ")
    d.pii("date_of_birth", dob(r))
    d.add("\nSSN: ")
    d.pii("ssn", ssn(r))
    d.add("\nInsurance member ID: MBR-")
    d.add(str(r.randint(10000000, 99999999)))
    d.add(f"\nReason for referral: chest pain on exertion since {MONTHS[r.randint(0, 11)]} 2024.\n"
          "Callback: ")
    d.pii("phone", phone(r))
    d.add("\nSent from workstation ")
    d.pii("ip_address", ip(r))
    d.add(f" running build version {r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 99)}.{r.randint(0, 999)}.\n")
    if r.random() < 0.5:
        d.add("Prior record listed SSN ")
        d.add(ssn(r, valid=False))
        d.add(" which failed validation.\n")
    return d


def invoice(r):
    d = Doc()
    d.add(f"INVOICE INV-2024-{r.randint(10000, 99999)}\nOrder number {r.randint(10**11, 10**12 - 1)}\n"
          f"ISBN 978-{r.randint(0, 9)}-{r.randint(100, 999)}-{r.randint(10000, 99999)}-{r.randint(0, 9)}\n\n")
    d.add("Item                      Qty   Amount\n")
    for _ in range(r.randint(3, 6)):
        d.add(f"Consumables batch {r.randint(100, 999)}      {r.randint(1, 40):>3}   "
              f"{r.randint(10, 9999)}.{r.randint(0, 99):02d}\n")
    d.add("\nPay by bank transfer to IBAN ")
    d.pii("iban", iban(r))
    d.add(".\nOr by card: ")
    d.pii("payment_card", card(r))
    d.add(f"\nTracking no. {card(r)}\n")  # a Luhn-valid number after a near-miss cue: not labelled
    if r.random() < 0.5:
        d.add("A previous payment from card ")
        d.add(card(r, valid=False))
        d.add(" was declined. Old account ")
        d.add(iban(r, valid=False))
        d.add(" closed.\n")
    d.add("Questions: ")
    d.pii("email", email(r, "accounts", "team"))
    d.add("\n")
    return d


def hr_form(r):
    d, f, l = Doc(), r.choice(FIRST), r.choice(LAST)
    d.add(f"New starter form\n\nName: {f} {l}\nDate of birth: ")
    d.pii("date_of_birth", dob(r))
    d.add("\nNational Insurance number: ")
    d.pii("national_insurance", nino(r))
    d.add("\nMobile: ")
    d.pii("phone", phone(r))
    d.add("\nSalary account IBAN: ")
    d.pii("iban", iban(r))
    d.add(f"\nStart date: {r.randint(1, 28)}/{r.randint(1, 12):02d}/2025\nBadge: B{r.randint(1000, 9999)}\n")
    return d


def figures_table(r):
    d = Doc()
    d.add("Quarterly activity (no personal data)\n\nWard   Admissions   Bed-days   Cost\n")
    for w in ["A1", "B2", "C3", "D4", "E5"]:
        d.add(f"{w}     {r.randint(100, 999):>5}      {r.randint(1000, 9999):>6}   "
              f"{r.randint(100, 999)} {r.randint(100, 999)} {r.randint(1000, 9999)}\n")
    d.add(f"\nSoftware version {r.randint(1, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}.{r.randint(0, 9)}; "
          f"report run 2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}.\n")
    return d


TEMPLATES = [clinical_letter, referral_fax, invoice, hr_form, figures_table]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    r = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8") as out:
        for i in range(args.docs):
            template = TEMPLATES[i % len(TEMPLATES)]
            doc = template(r)
            out.write(json.dumps({"id": f"doc{i}", "template": template.__name__, "text": doc.text,
                                  "labels": doc.labels}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
