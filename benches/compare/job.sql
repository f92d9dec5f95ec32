-- The reference job in DuckDB. run.sh fills in the input file and the output folder.
SET preserve_insertion_order = false;
COPY (
    SELECT
        Id,
        Name,
        AccountId,
        FirstName || ' ' || LastName AS ContactName,
        Email,
        Phone,
        repeat('*', greatest(length(CreditCard) - 4, 0)) || right(CreditCard, 4) AS CreditCard,
        Amount,
        Probability,
        Amount * Probability / 100 AS ExpectedRevenue,
        StageName,
        CloseDate,
        LastModifiedDate,
        left(Description, 64) AS Description,
        LeadSource
    FROM read_json('@INPUT@', format = 'newline_delimited')
    WHERE Email IS NOT NULL
      AND StageName <> 'Closed Lost'
      AND Amount > 1000
) TO '@OUTPUT@' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (StageName));
