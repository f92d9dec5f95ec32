//! The built-in demo CRM: realistic Salesforce-like records made up on the spot, so a new
//! user can build and run a flow with no account and no network.
//!
//! Deterministic: record `k` of a given object and seed is always the same, whatever the
//! batch size or how much of the stream is read, so previews and runs agree. The data is
//! made up and says so: phone numbers are in the 555-01xx range reserved for fiction,
//! e-mail domains end in `.example`, card numbers are test-style Visa numbers.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::node::{
    BoxFuture, BuildContext, ConfigProblem, NodeConfig, NodeError, NodeKind, PlanContext, Runtime,
    Source,
};
use crate::node::{Demand, SourceOutput};
use crate::types::FieldType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoCrm {
    /// Which Salesforce-like object to produce.
    pub object: CrmObject,
    /// How many records.
    #[serde(default = "default_records")]
    pub records: u64,
    /// Another seed gives other, equally realistic records.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_records() -> u64 {
    1000
}

fn default_seed() -> u64 {
    42
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CrmObject {
    Account,
    Contact,
    Opportunity,
    Lead,
}

impl NodeKind for DemoCrm {
    const TYPE: &'static str = "source.demo_crm";
    const TITLE: &'static str = "Demo CRM";
    const ICON: &'static str = "🏢";
    const DESCRIPTION: &'static str =
        "Made-up Salesforce-like accounts, contacts, opportunities and leads; no account needed";
}

impl CrmObject {
    fn fields(self) -> &'static [(&'static str, FieldType)] {
        use FieldType::*;
        match self {
            CrmObject::Account => &[
                ("Id", String),
                ("Name", String),
                ("Industry", String),
                ("BillingCity", String),
                ("BillingCountry", String),
                ("AnnualRevenue", Number),
                ("NumberOfEmployees", Integer),
                ("Phone", String),
                ("Website", String),
                ("CreatedDate", Timestamp),
            ],
            CrmObject::Contact => &[
                ("Id", String),
                ("AccountId", String),
                ("FirstName", String),
                ("LastName", String),
                ("Email", String),
                ("Phone", String),
                ("Title", String),
                ("MailingCity", String),
                ("MailingCountry", String),
                ("Birthdate", Date),
                ("LastModifiedDate", Timestamp),
            ],
            CrmObject::Opportunity => &[
                ("Id", String),
                ("Name", String),
                ("AccountId", String),
                ("FirstName", String),
                ("LastName", String),
                ("Email", String),
                ("Phone", String),
                ("CreditCard", String),
                ("Amount", Number),
                ("Probability", Integer),
                ("StageName", String),
                ("CloseDate", Date),
                ("LastModifiedDate", Timestamp),
                ("Description", String),
                ("IsDeleted", Boolean),
                ("LeadSource", String),
            ],
            CrmObject::Lead => &[
                ("Id", String),
                ("FirstName", String),
                ("LastName", String),
                ("Company", String),
                ("Email", String),
                ("Phone", String),
                ("Status", String),
                ("LeadSource", String),
                ("Rating", String),
                ("CreatedDate", Timestamp),
            ],
        }
    }

    fn schema(self) -> SchemaRef {
        Arc::new(Schema::new(
            self.fields()
                .iter()
                .map(|(name, t)| Field::new(*name, t.arrow(), *name != "Id"))
                .collect::<Vec<_>>(),
        ))
    }

    /// Salesforce's key prefix for the object.
    fn prefix(self) -> &'static str {
        match self {
            CrmObject::Account => "001",
            CrmObject::Contact => "003",
            CrmObject::Opportunity => "006",
            CrmObject::Lead => "00Q",
        }
    }
}

impl NodeConfig for DemoCrm {
    fn output_schema(
        &self,
        _: Option<&SchemaRef>,
        _: &PlanContext,
    ) -> Result<SchemaRef, Vec<ConfigProblem>> {
        Ok(self.object.schema())
    }

    fn summary(&self) -> String {
        format!("{:?} · {} records", self.object, self.records)
    }

    fn build(&self, cx: &BuildContext) -> Result<Runtime, NodeError> {
        let records = match cx.partition {
            Some(part) => part.range(self.records),
            None => 0..self.records,
        };
        Ok(Runtime::Source(Box::new(DemoRun {
            config: self.clone(),
            schema: cx.output_schema.clone(),
            records,
        })))
    }

    /// A part is a run of record numbers, as Salesforce's PK chunking splits by Id.
    fn reads_in_partitions(&self) -> Result<(), String> {
        Ok(())
    }
}

struct DemoRun {
    config: DemoCrm,
    schema: SchemaRef,
    /// The numbers of the records to make.
    records: std::ops::Range<u64>,
}

impl Source for DemoRun {
    fn run(self: Box<Self>, mut out: SourceOutput) -> BoxFuture<Result<(), NodeError>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let total = self.records.end;
                let mut start = self.records.start;
                while start < total {
                    let want = out
                        .remaining()
                        .unwrap_or(u64::MAX)
                        .min(out.batch_rows() as u64);
                    let end = (start + want).min(total);
                    let batch = generate(&self.config, &self.schema, start..end)?;
                    out.add_bytes(batch.get_array_memory_size() as u64);
                    if out.send_blocking(batch)? == Demand::Enough {
                        break;
                    }
                    start = end;
                }
                Ok(())
            })
            .await
            .map_err(|e| NodeError::msg(format!("the demo source stopped unexpectedly: {e}")))?
        })
    }
}

/// SplitMix64: small, fast and good enough to make believable test data.
struct Rng(u64);

impl Rng {
    fn for_record(seed: u64, stream: u64, k: u64) -> Self {
        let mut r = Rng(seed
            ^ stream.wrapping_mul(0xA076_1D64_78BD_642F)
            ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(1000) < percent * 10
    }

    fn chance_per_mille(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

const FIRST: &[&str] = &[
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Zoë",
    "José",
    "Françoise",
    "Łukasz",
    "Søren",
    "Aisha",
    "Hiroshi",
    "Priya",
    "Mateo",
    "Chloé",
    "Björn",
    "Amélie",
    "Ana",
    "Chen",
    "Fatima",
    "Grace",
    "Jürgen",
    "Kwame",
    "Lucía",
    "Mohammed",
    "Nina",
    "Oskar",
    "Rafael",
    "Sofia",
];
const LAST: &[&str] = &[
    "Smith",
    "García",
    "Müller",
    "Nguyen",
    "O'Brien",
    "Kowalski",
    "Rossi",
    "Johansson",
    "Tanaka",
    "Patel",
    "Dubois",
    "Silva",
    "Andersen",
    "Kim",
    "Novák",
    "Okafor",
    "Schmidt",
    "Lefèvre",
    "Hernández",
    "Costa",
    "Ivanova",
    "Walsh",
    "Yilmaz",
    "Brown",
];
const COMPANY_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
    "Aperture",
    "Nordwind",
    "Blue Sky",
    "Zenith",
];
const COMPANY_B: &[&str] = &[
    "Corp",
    "Industries",
    "Labs",
    "Systems",
    "GmbH",
    "Holdings",
    "Partners",
    "Logistics",
    "Foods",
    "Energy",
    "Media",
    "AG",
];
const INDUSTRY: &[&str] = &[
    "Technology",
    "Finance",
    "Healthcare",
    "Retail",
    "Manufacturing",
    "Energy",
    "Media",
    "Education",
    "Logistics",
    "Hospitality",
];
const CITY: &[(&str, &str)] = &[
    ("San Francisco", "United States"),
    ("New York", "United States"),
    ("London", "United Kingdom"),
    ("Zürich", "Switzerland"),
    ("München", "Germany"),
    ("São Paulo", "Brazil"),
    ("Tokyo", "Japan"),
    ("Paris", "France"),
    ("Kraków", "Poland"),
    ("Toronto", "Canada"),
    ("Sydney", "Australia"),
    ("Bengaluru", "India"),
    ("Malmö", "Sweden"),
    ("Lagos", "Nigeria"),
];
const STAGE: &[(&str, i64)] = &[
    ("Prospecting", 10),
    ("Qualification", 20),
    ("Needs Analysis", 30),
    ("Value Proposition", 50),
    ("Proposal/Price Quote", 75),
    ("Negotiation/Review", 90),
    ("Closed Won", 100),
    ("Closed Lost", 0),
];
const LEAD_SOURCE: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Trade Show",
    "Word of mouth",
    "Other",
];
const TITLE: &[&str] = &[
    "CFO",
    "VP Marketing",
    "Head of Operations",
    "Data Analyst",
    "Procurement Manager",
    "CEO",
    "IT Director",
    "Account Manager",
];
const LEAD_STATUS: &[&str] = &[
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];
const RATING: &[&str] = &["Hot", "Warm", "Cold"];
const WORDS: &[&str] = &[
    "renewal",
    "pricing",
    "discount",
    "pilot",
    "rollout",
    "budget",
    "approved",
    "pending",
    "legal",
    "review",
    "café",
    "naïve",
    "résumé",
    "quarterly",
    "€25k",
    "deadline",
    "Zürich",
    "office",
    "expansion",
    "integration",
    "security",
    "onboarding",
    "champion",
    "procurement",
];

/// A person, derived from its own stream so a contact can repeat an earlier one.
struct Person {
    first: &'static str,
    last: &'static str,
    company: String,
    domain: String,
}

fn person(seed: u64, k: u64) -> Person {
    let mut r = Rng::for_record(seed, 7, k);
    let first = r.pick(FIRST);
    let last = r.pick(LAST);
    let (a, b) = (r.pick(COMPANY_A), r.pick(COMPANY_B));
    Person {
        first,
        last,
        company: format!("{a} {b}"),
        domain: format!("{}.example", a.to_lowercase().replace(' ', "")),
    }
}

/// Names as mail systems write them: accents dropped, other letters left out.
fn ascii_fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.to_lowercase().chars() {
        let folded = match c {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => "a",
            'ç' => "c",
            'è' | 'é' | 'ê' | 'ë' => "e",
            'ì' | 'í' | 'î' | 'ï' => "i",
            'ñ' => "n",
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'ø' => "o",
            'ù' | 'ú' | 'û' | 'ü' => "u",
            'ł' => "l",
            'ß' => "ss",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => "",
        };
        out.push_str(folded);
    }
    out
}

fn email(p: &Person) -> String {
    format!(
        "{}.{}@{}",
        ascii_fold(p.first),
        ascii_fold(p.last),
        p.domain
    )
}

fn sf_id(prefix: &str, k: u64) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(18);
    id.push_str(prefix);
    id.push_str("5g0000");
    let mut n = k;
    let mut tail = [b'0'; 9];
    for slot in tail.iter_mut().rev() {
        *slot = DIGITS[(n % 62) as usize];
        n /= 62;
    }
    id.push_str(std::str::from_utf8(&tail).expect("ASCII"));
    id
}

fn phone(r: &mut Rng) -> String {
    format!("+1 {}-555-01{:02}", 200 + r.below(800), r.below(100))
}

/// A 16-digit Visa-style number with a valid Luhn check digit.
fn card(r: &mut Rng) -> String {
    let mut digits: Vec<u32> = vec![4];
    digits.extend((0..14).map(|_| r.below(10) as u32));
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits
        .into_iter()
        .map(|d| char::from_digit(d, 10).expect("digit"))
        .collect()
}

fn description(r: &mut Rng) -> String {
    let target = 20 + r.below(281) as usize;
    let mut s = String::with_capacity(target + 16);
    while s.chars().count() < target {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(r.pick(WORDS));
    }
    s.chars().take(target).collect()
}

/// 2024-01-01 as days since 1970-01-01.
const DAY_2024: i32 = 19_723;
const MICROS_2024: i64 = DAY_2024 as i64 * 86_400_000_000;

fn generate(
    config: &DemoCrm,
    schema: &SchemaRef,
    range: std::ops::Range<u64>,
) -> Result<RecordBatch, NodeError> {
    let n = (range.end - range.start) as usize;
    let mut columns: Vec<Column> = schema
        .fields()
        .iter()
        .map(|f| Column::new(f.data_type(), n))
        .collect();
    let object = config.object;
    for k in range {
        let mut r = Rng::for_record(config.seed, object as u64, k);
        let mut c = columns.iter_mut();
        let mut next = || c.next().expect("one column per field");
        next().text(Some(&sf_id(object.prefix(), k)));
        match object {
            CrmObject::Account => {
                let p = person(config.seed, k);
                let (city, country) = CITY[r.below(CITY.len() as u64) as usize];
                next().text(Some(&p.company));
                next().text(Some(r.pick(INDUSTRY)));
                next().text(Some(city));
                next().text(Some(country));
                next().number((r.below(500_000_000) as f64 / 100.0).round() * 100.0);
                next().integer(10 + r.below(20_000) as i64);
                next().text(Some(&phone(&mut r)));
                next().text(Some(&format!("https://www.{}", p.domain)));
                next().timestamp(MICROS_2024 + (r.below(900 * 86_400) as i64) * 1_000_000);
            }
            CrmObject::Contact => {
                // About one contact in twenty repeats an earlier person, as CRMs do.
                let who = if k > 0 && r.chance(5) { r.below(k) } else { k };
                let p = person(config.seed, who);
                let (city, country) = CITY[r.below(CITY.len() as u64) as usize];
                next().text(Some(&sf_id("001", r.below(k / 4 + 1))));
                next().text(Some(p.first));
                next().text(Some(p.last));
                next().text((!r.chance(3)).then(|| email(&p)).as_deref());
                next().text(Some(&phone(&mut r)));
                next().text(Some(r.pick(TITLE)));
                next().text(Some(city));
                next().text(Some(country));
                next().date(DAY_2024 - 365 * 20 - r.below(365 * 40) as i32);
                next().timestamp(MICROS_2024 + (r.below(900 * 86_400) as i64) * 1_000_000);
            }
            CrmObject::Opportunity => {
                let p = person(config.seed, k);
                let (stage, probability) = STAGE[r.below(STAGE.len() as u64) as usize];
                next().text(Some(&format!(
                    "{} - {}",
                    p.company,
                    r.pick(&["Renewal", "New Business", "Upsell", "Pilot", "Expansion"])
                )));
                next().text(Some(&sf_id("001", r.below(k / 4 + 1))));
                next().text(Some(p.first));
                next().text(Some(p.last));
                next().text((!r.chance(3)).then(|| email(&p)).as_deref());
                next().text(Some(&phone(&mut r)));
                next().text(Some(&card(&mut r)));
                let amount = (r.below(25_000_000) as f64) / 100.0;
                next().number_or_null((!r.chance(1)).then_some(amount));
                next().integer(probability);
                next().text(Some(stage));
                next().date(DAY_2024 + r.below(3 * 365) as i32);
                next().timestamp(
                    MICROS_2024
                        + (r.below(1000 * 86_400) as i64) * 1_000_000
                        + r.below(1_000_000) as i64,
                );
                next().text(Some(&description(&mut r)));
                next().boolean(r.chance_per_mille(5));
                next().text(Some(r.pick(LEAD_SOURCE)));
            }
            CrmObject::Lead => {
                let p = person(config.seed, k);
                next().text(Some(p.first));
                next().text(Some(p.last));
                next().text(Some(&p.company));
                next().text((!r.chance(3)).then(|| email(&p)).as_deref());
                next().text(Some(&phone(&mut r)));
                next().text(Some(r.pick(LEAD_STATUS)));
                next().text(Some(r.pick(LEAD_SOURCE)));
                next().text(Some(r.pick(RATING)));
                next().timestamp(MICROS_2024 + (r.below(900 * 86_400) as i64) * 1_000_000);
            }
        }
    }
    let arrays: Vec<ArrayRef> = columns.into_iter().map(Column::finish).collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// A column being filled, whatever its type.
enum Column {
    Text(StringBuilder),
    Integer(Int64Builder),
    Number(Float64Builder),
    Boolean(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Column {
    fn new(dt: &DataType, n: usize) -> Self {
        match dt {
            DataType::Int64 => Column::Integer(Int64Builder::with_capacity(n)),
            DataType::Float64 => Column::Number(Float64Builder::with_capacity(n)),
            DataType::Boolean => Column::Boolean(BooleanBuilder::with_capacity(n)),
            DataType::Date32 => Column::Date(Date32Builder::with_capacity(n)),
            DataType::Timestamp(..) => Column::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(n).with_timezone("+00:00"),
            ),
            _ => Column::Text(StringBuilder::with_capacity(n, n * 16)),
        }
    }

    fn text(&mut self, v: Option<&str>) {
        if let Column::Text(b) = self {
            b.append_option(v)
        }
    }

    fn integer(&mut self, v: i64) {
        if let Column::Integer(b) = self {
            b.append_value(v)
        }
    }

    fn number(&mut self, v: f64) {
        self.number_or_null(Some(v))
    }

    fn number_or_null(&mut self, v: Option<f64>) {
        if let Column::Number(b) = self {
            b.append_option(v)
        }
    }

    fn boolean(&mut self, v: bool) {
        if let Column::Boolean(b) = self {
            b.append_value(v)
        }
    }

    fn date(&mut self, v: i32) {
        if let Column::Date(b) = self {
            b.append_value(v)
        }
    }

    fn timestamp(&mut self, v: i64) {
        if let Column::Timestamp(b) = self {
            b.append_value(v)
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Column::Text(mut b) => Arc::new(b.finish()),
            Column::Integer(mut b) => Arc::new(b.finish()),
            Column::Number(mut b) => Arc::new(b.finish()),
            Column::Boolean(mut b) => Arc::new(b.finish()),
            Column::Date(mut b) => Arc::new(b.finish()),
            Column::Timestamp(mut b) => Arc::new(b.finish()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(object: CrmObject) -> DemoCrm {
        DemoCrm {
            object,
            records: 100,
            seed: 42,
        }
    }

    #[test]
    fn same_records_whatever_the_batching() {
        let c = config(CrmObject::Opportunity);
        let schema = c.object.schema();
        let whole = generate(&c, &schema, 0..100).unwrap();
        let parts = [
            generate(&c, &schema, 0..37).unwrap(),
            generate(&c, &schema, 37..100).unwrap(),
        ];
        assert_eq!(
            whole,
            arrow::compute::concat_batches(&schema, &parts).unwrap()
        );
    }

    #[test]
    fn every_object_matches_its_schema_and_ids_are_unique() {
        for object in [
            CrmObject::Account,
            CrmObject::Contact,
            CrmObject::Opportunity,
            CrmObject::Lead,
        ] {
            let c = config(object);
            let b = generate(&c, &c.object.schema(), 0..500).unwrap();
            let ids = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            let unique: std::collections::HashSet<_> = ids.iter().collect();
            assert_eq!(unique.len(), 500);
            assert!(ids.value(0).len() == 18 && ids.value(0).starts_with(object.prefix()));
        }
    }

    #[test]
    fn e_mail_addresses_fold_accents() {
        assert_eq!(ascii_fold("José"), "jose");
        assert_eq!(ascii_fold("O'Brien"), "obrien");
        assert_eq!(ascii_fold("Łukasz"), "lukasz");
        assert_eq!(ascii_fold("Søren"), "soren");
    }

    #[test]
    fn cards_pass_luhn_and_phone_numbers_are_fictional() {
        let mut r = Rng(1);
        for _ in 0..100 {
            let c = card(&mut r);
            assert_eq!(c.len(), 16);
            let sum: u32 = c
                .chars()
                .rev()
                .enumerate()
                .map(|(i, ch)| {
                    let d = ch.to_digit(10).unwrap();
                    if i % 2 == 1 {
                        let x = d * 2;
                        if x > 9 { x - 9 } else { x }
                    } else {
                        d
                    }
                })
                .sum();
            assert_eq!(sum % 10, 0, "{c}");
            assert!(phone(&mut r).contains("-555-01"));
        }
    }
}
