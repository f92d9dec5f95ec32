"""The reference job in pandas with the pyarrow engine: job_pandas.py INPUT OUTPUT."""
import sys

import pandas as pd

source, target = sys.argv[1:3]
df = pd.read_json(source, lines=True, engine="pyarrow", dtype_backend="pyarrow")
df = df[df["Email"].notna()]
df = df[(df["StageName"] != "Closed Lost") & (df["Amount"] > 1000)]
card = df["CreditCard"]
df = df.assign(
    CreditCard=card.str.slice(-4).str.rjust(16, "*"),
    ContactName=df["FirstName"] + " " + df["LastName"],
    ExpectedRevenue=df["Amount"] * df["Probability"] / 100,
    Description=df["Description"].str.slice(0, 64),
)
df = df[[
    "Id", "Name", "AccountId", "ContactName", "Email", "Phone", "CreditCard", "Amount",
    "Probability", "ExpectedRevenue", "StageName", "CloseDate", "LastModifiedDate",
    "Description", "LeadSource",
]]
df.to_parquet(target, partition_cols=["StageName"], compression="zstd", index=False)
