"""The reference job in polars, on its streaming engine: job_polars.py INPUT OUTPUT."""
import sys

import polars as pl

source, target = sys.argv[1:3]
card = pl.col("CreditCard")
(
    pl.scan_ndjson(source)
    .filter(pl.col("Email").is_not_null())
    .filter((pl.col("StageName") != "Closed Lost") & (pl.col("Amount") > 1000))
    .with_columns(
        CreditCard=card.str.slice(-4).str.pad_start(16, "*"),
        ContactName=pl.concat_str(["FirstName", "LastName"], separator=" "),
        ExpectedRevenue=pl.col("Amount") * pl.col("Probability") / 100,
        Description=pl.col("Description").str.slice(0, 64),
    )
    .select(
        "Id", "Name", "AccountId", "ContactName", "Email", "Phone", "CreditCard",
        "Amount", "Probability", "ExpectedRevenue", "StageName", "CloseDate",
        "LastModifiedDate", "Description", "LeadSource",
    )
    .collect(engine="streaming")
    .write_parquet(target, compression="zstd", partition_by="StageName")
)
