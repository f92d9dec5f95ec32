"""Reads one tool's output folder and prints the four figures every tool must agree on:
records, the sum of ExpectedRevenue, cards masked but their last four digits, and the
longest Description in characters. Parquet partitions are read file by file; Miller's CSV
partitions as CSV.

check.py OUTPUT_FOLDER  ->  one JSON object on standard output
"""
import json
import pathlib
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds

folder = pathlib.Path(sys.argv[1])
parquet = sorted(folder.rglob("*.parquet"))
if parquet:
    # File by file: the tools differ in string types (string, large_string, view).
    columns = ["ExpectedRevenue", "CreditCard", "Description"]
    kinds = [pa.float64(), pa.string(), pa.string()]
    tables = []
    for p in parquet:
        t = ds.dataset(p, format="parquet").to_table(columns=columns)
        tables.append(pa.table([t[c].cast(k) for c, k in zip(columns, kinds)], names=columns))
    table = pa.concat_tables(tables)
else:
    strings = {c: pa.string() for c in ["CreditCard", "Description"]}
    options = pacsv.ConvertOptions(column_types=strings | {"ExpectedRevenue": pa.float64()})
    tables = [
        pacsv.read_csv(p, convert_options=options).select(
            ["ExpectedRevenue", "CreditCard", "Description"]
        )
        for p in sorted(folder.rglob("*.csv"))
    ]
    table = pa.concat_tables(tables) if tables else None

if table is None or table.num_rows == 0:
    print(json.dumps({"records": 0}))
    sys.exit(0)
revenue = pc.sum(table["ExpectedRevenue"].cast(pa.float64())).as_py() or 0.0
masked = pc.sum(
    pc.match_substring_regex(table["CreditCard"].cast(pa.string()), r"^\*+[0-9]{4}$").cast(pa.int64())
).as_py()
longest = pc.max(pc.utf8_length(table["Description"].cast(pa.string()))).as_py()
print(
    json.dumps(
        {
            "records": table.num_rows,
            "expected_revenue": round(revenue, 2),
            "masked_cards": masked,
            "longest_description": longest,
        }
    )
)
