#!/usr/bin/env python3
"""Writes an ImportAccounts file of N synthetic accounts (one debtor each) for the import
benchmark and tests: gen_import_file.py N OUT.{jsonl,csv} [--broken-every K] [--start S].
Valid PRC resident ids and phones; 12 monthly instalments, the first due 60 days ago."""
import argparse, datetime, json

WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
CHECK = "10X98765432"

def national_id(n):
    birth = datetime.date(1960, 1, 1) + datetime.timedelta(days=n // 1000 % 15000)
    body = "110105" + birth.strftime("%Y%m%d") + "%03d" % (n % 1000)
    return body + CHECK[sum(int(c) * w for c, w in zip(body, WEIGHTS)) % 11]

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int)
    parser.add_argument("out")
    parser.add_argument("--broken-every", type=int, default=0, help="make every K-th record invalid (bad national id)")
    parser.add_argument("--start", type=int, default=1)
    parser.add_argument("--crlf", action="store_true")
    args = parser.parse_args()
    today = datetime.date.today()
    first_due = today - datetime.timedelta(days=60)
    opened = first_due - datetime.timedelta(days=30)
    dues = [first_due + datetime.timedelta(days=30 * i) for i in range(12)]
    csv = args.out.endswith(".csv")
    end = "\r\n" if args.crlf else "\n"
    with open(args.out, "w", encoding="utf-8", newline="") as out:
        if csv:
            out.write("debtor_external_id,full_name,national_id,phone,address_text,region_code,time_zone,account_external_id,"
                      "lender_id,product,principal_minor,currency,opened_date,instalments" + end)
        for n in range(args.start, args.start + args.n):
            nid = national_id(n)
            if args.broken_every and n % args.broken_every == 0:
                nid = nid[:-1] + ("0" if nid[-1] != "0" else "1")
            phone = "138%08d" % (n % 100000000)
            if csv:
                instalments = ";".join("%s:100000" % d.isoformat() for d in dues)
                out.write(",".join([f"dbt-{n}", f"Debtor {n}", nid, phone, f"\"Road {n}, Pudong\"", "310115", "Asia/Shanghai",
                                    f"loan-{n}", "lender-1", "INSTALMENT_LOAN", "1200000", "CNY", opened.isoformat(), instalments]) + end)
            else:
                d = lambda x: {"year": x.year, "month": x.month, "day": x.day}
                money = lambda a: {"amountMinor": str(a), "currencyCode": "CNY"}
                record = {"debtor": {"externalId": f"dbt-{n}", "fullName": f"Debtor {n}", "nationalId": nid, "phone": phone,
                                     "address": {"text": f"Road {n}, Pudong", "regionCode": "310115"}, "timeZone": "Asia/Shanghai"},
                          "account": {"externalId": f"loan-{n}", "lenderId": "lender-1", "product": "PRODUCT_TYPE_INSTALMENT_LOAN",
                                      "principal": money(1200000), "openedDate": d(opened),
                                      "instalments": [{"dueDate": d(x), "amountDue": money(100000)} for x in dues]}}
                out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + end)

main()
