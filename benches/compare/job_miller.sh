#!/usr/bin/env bash
# The reference job in Miller: job_miller.sh INPUT OUTPUT. Miller writes no Parquet, so the
# partitions are CSV files, one per stage.
set -euo pipefail
mkdir -p "$2"
cd "$2"
mlr --ijsonl --ocsv \
  filter 'is_not_empty($Email) && $StageName != "Closed Lost" && $Amount > 1000' \
  then put '
    n = strlen($CreditCard);
    $CreditCard = gsub(substr0($CreditCard, 0, n - 5), ".", "*") . substr0($CreditCard, n - 4, n - 1);
    $ContactName = $FirstName . " " . $LastName;
    $ExpectedRevenue = $Amount * $Probability / 100;
    $Description = substr0($Description, 0, 63);
  ' \
  then cut -o -f Id,Name,AccountId,ContactName,Email,Phone,CreditCard,Amount,Probability,ExpectedRevenue,StageName,CloseDate,LastModifiedDate,Description,LeadSource \
  then split -g StageName --prefix StageName \
  "$1"
