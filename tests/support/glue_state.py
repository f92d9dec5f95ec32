"""Prints what a Glue server holds for one database, as one JSON document, for the tests
of catalog registration: the database, its tables with their versions, and each table's
partitions. Reads with boto3 from the endpoint and keys given on the command line.

Usage: glue_state.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY DATABASE
"""

import json
import sys

import boto3

endpoint, key_id, secret, database = sys.argv[1:5]
glue = boto3.client(
    "glue",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=key_id,
    aws_secret_access_key=secret,
)
try:
    found = glue.get_database(Name=database)["Database"]
except glue.exceptions.EntityNotFoundException:
    print(json.dumps({"database": None}))
    sys.exit(0)
tables = {}
for table in glue.get_tables(DatabaseName=database)["TableList"]:
    name = table["Name"]
    versions = glue.get_table_versions(DatabaseName=database, TableName=name)["TableVersions"]
    partitions = glue.get_partitions(DatabaseName=database, TableName=name)["Partitions"]
    tables[name] = {
        "table": table,
        "versions": len(versions),
        "partitions": sorted(
            (
                {
                    "values": p["Values"],
                    "location": p["StorageDescriptor"]["Location"],
                    "created": p.get("CreationTime"),
                }
                for p in partitions
            ),
            key=lambda p: p["values"],
        ),
    }
print(json.dumps({"database": found["Name"], "tables": tables}, default=str))
