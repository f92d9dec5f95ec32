//! An OData service's `$metadata` (EDMX, OData v2 or v4): its entity sets, each with its
//! entity type's properties, their Edm types and its key. SAP Gateway's annotations
//! (`sap:label`, `sap:filterable`, `sap:creatable`, `sap:updatable`, `sap:deletable`) are
//! read where the service gives them, and whether a set tracks its changes (v2's
//! `sap:change-tracking`, v4's `Capabilities.ChangeTracking` annotation).

use std::collections::HashMap;

use arrow::datatypes::{DataType, TimeUnit};
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

/// Which OData the service speaks: its JSON, literals and paging differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2,
    V4,
}

/// What `$metadata` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    pub version: Version,
    pub sets: Vec<EntitySet>,
}

/// An entity set with its entity type.
#[derive(Debug, Clone, PartialEq)]
pub struct EntitySet {
    pub name: String,
    pub label: String,
    pub properties: Vec<Property>,
    /// The key properties, in order.
    pub keys: Vec<String>,
    pub creatable: bool,
    pub updatable: bool,
    pub deletable: bool,
    /// Whether the service keeps a log of the set's changes that delta links follow.
    pub change_tracking: bool,
}

/// A property of an entity type.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    pub label: String,
    /// `Edm.String`, `Edm.Decimal`…
    pub edm: String,
    pub precision: Option<u32>,
    /// `None` also for `Scale="variable"`.
    pub scale: Option<u32>,
    pub filterable: bool,
}

impl Property {
    /// The Arrow type of the property's Edm type. Decimals stay exact; instants are UTC.
    pub fn arrow_type(&self) -> DataType {
        match self.edm.as_str() {
            "Edm.Boolean" => DataType::Boolean,
            "Edm.Byte" | "Edm.SByte" | "Edm.Int16" | "Edm.Int32" => DataType::Int32,
            "Edm.Int64" => DataType::Int64,
            "Edm.Single" | "Edm.Double" => DataType::Float64,
            "Edm.Decimal" => {
                let precision = self.precision.unwrap_or(38).min(38);
                let scale = self.scale.unwrap_or(0).min(precision);
                crate::types::FieldType::decimal(precision, scale)
                    .map(|t| t.arrow())
                    .unwrap_or(DataType::Float64)
            }
            "Edm.DateTime" | "Edm.DateTimeOffset" => {
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
            }
            "Edm.Date" => DataType::Date32,
            // Edm.String, Edm.Guid, Edm.Binary (base64), Edm.Time, Edm.TimeOfDay,
            // Edm.Duration…
            _ => DataType::Utf8,
        }
    }
}

/// Reads a `$metadata` document.
pub fn parse(text: &str) -> Result<Metadata, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut version = None;
    let mut namespace = String::new();
    let mut alias = String::new();
    // Entity types by qualified name (`Namespace.Type`, and `Alias.Type`).
    let mut types: HashMap<String, (Vec<Property>, Vec<String>)> = HashMap::new();
    let mut current: Option<(String, Vec<Property>, Vec<String>)> = None;
    let mut in_key = false;
    // (set name, type name, label, creatable, updatable, deletable)
    let mut sets: Vec<(String, String, String, bool, bool, bool)> = Vec::new();
    // Sets that track changes, by name; v4 says so in annotations, inside the set's
    // element or in an `Annotations` block that targets it (`Container/Set`).
    let mut tracked: HashMap<String, bool> = HashMap::new();
    let mut target: Option<String> = None;
    let mut tracking: Option<String> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("$metadata is not XML: {e}"))?;
        let (e, empty) = match event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) => {
                match e.local_name().as_ref() {
                    b"Key" => in_key = false,
                    b"EntityType" => finish(&mut current, &namespace, &alias, &mut types),
                    b"EntitySet" | b"Annotations" => target = None,
                    b"Annotation" => tracking = None,
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match e.local_name().as_ref() {
            b"Edmx" => {
                version = Some(match attr(&e, "Version").as_deref() {
                    Some("4.0") | Some("4.01") => Version::V4,
                    _ => Version::V2,
                })
            }
            b"Schema" => {
                namespace = attr(&e, "Namespace").unwrap_or_default();
                alias = attr(&e, "Alias").unwrap_or_default();
            }
            b"EntityType" => {
                let name = attr(&e, "Name").unwrap_or_default();
                current = Some((name, Vec::new(), Vec::new()));
                if empty {
                    finish(&mut current, &namespace, &alias, &mut types);
                }
            }
            b"Key" => in_key = !empty,
            b"PropertyRef" if in_key => {
                if let (Some((_, _, keys)), Some(name)) = (&mut current, attr(&e, "Name")) {
                    keys.push(name);
                }
            }
            b"Property" => {
                if let Some((_, properties, _)) = &mut current {
                    let name = attr(&e, "Name").unwrap_or_default();
                    properties.push(Property {
                        label: attr(&e, "label").unwrap_or_else(|| name.clone()),
                        edm: attr(&e, "Type").unwrap_or_else(|| "Edm.String".into()),
                        precision: attr(&e, "Precision").and_then(|p| p.parse().ok()),
                        scale: attr(&e, "Scale").and_then(|s| s.parse().ok()),
                        filterable: attr(&e, "filterable").as_deref() != Some("false"),
                        name,
                    });
                }
            }
            b"EntitySet" => {
                let flag = |name: &str| attr(&e, name).as_deref() != Some("false");
                let name = attr(&e, "Name").unwrap_or_default();
                if attr(&e, "change-tracking").as_deref() == Some("true") {
                    tracked.insert(name.clone(), true);
                }
                if !empty {
                    target = Some(name);
                }
                sets.push((
                    attr(&e, "Name").unwrap_or_default(),
                    attr(&e, "EntityType").unwrap_or_default(),
                    attr(&e, "label").unwrap_or_default(),
                    flag("creatable"),
                    flag("updatable"),
                    flag("deletable"),
                ));
            }
            b"Annotations" if !empty => {
                target = attr(&e, "Target").map(|t| t.rsplit('/').next().unwrap_or(&t).to_string());
            }
            b"Annotation" => {
                let term = attr(&e, "Term").unwrap_or_default();
                if let (true, Some(set)) = (term.ends_with("ChangeTracking"), &target) {
                    // `Supported` is true unless the record says otherwise.
                    let supported = attr(&e, "Bool").as_deref() != Some("false");
                    tracked.insert(set.clone(), supported);
                    tracking = (!empty).then(|| set.clone());
                }
            }
            b"PropertyValue" if attr(&e, "Property").as_deref() == Some("Supported") => {
                if let Some(set) = &tracking {
                    tracked.insert(set.clone(), attr(&e, "Bool").as_deref() != Some("false"));
                }
            }
            _ => {}
        }
    }
    let version = version.ok_or("$metadata has no edmx:Edmx element: is it an OData service?")?;
    let sets = sets
        .into_iter()
        .filter_map(
            |(name, type_name, label, creatable, updatable, deletable)| {
                let (properties, keys) = types.get(&type_name)?.clone();
                Some(EntitySet {
                    change_tracking: tracked.get(&name).copied().unwrap_or(false),
                    label: if label.is_empty() {
                        name.clone()
                    } else {
                        label
                    },
                    name,
                    properties,
                    keys,
                    creatable,
                    updatable,
                    deletable,
                })
            },
        )
        .collect();
    Ok(Metadata { version, sets })
}

/// Files the entity type being read under its qualified names.
fn finish(
    current: &mut Option<(String, Vec<Property>, Vec<String>)>,
    namespace: &str,
    alias: &str,
    types: &mut HashMap<String, (Vec<Property>, Vec<String>)>,
) {
    if let Some((name, properties, keys)) = current.take() {
        if !alias.is_empty() {
            types.insert(
                format!("{alias}.{name}"),
                (properties.clone(), keys.clone()),
            );
        }
        types.insert(format!("{namespace}.{name}"), (properties, keys));
    }
}

/// An attribute by its local name (`sap:label` by `label`), unescaped.
fn attr(e: &BytesStart, name: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == name.as_bytes())
            .then(|| a.normalized_value(XmlVersion::Implicit1_0).ok())
            .flatten()
            .map(|v| v.into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="1.0" xmlns:edmx="http://schemas.microsoft.com/ado/2007/06/edmx" xmlns:m="http://schemas.microsoft.com/ado/2007/08/dataservices/metadata" xmlns:sap="http://www.sap.com/Protocols/SAPData">
 <edmx:DataServices m:DataServiceVersion="2.0">
  <Schema Namespace="API_PRODUCT_SRV" xmlns="http://schemas.microsoft.com/ado/2008/09/edm">
   <EntityType Name="A_ProductType" sap:label="Product">
    <Key><PropertyRef Name="Product"/></Key>
    <Property Name="Product" Type="Edm.String" Nullable="false" MaxLength="40" sap:label="Product"/>
    <Property Name="Price" Type="Edm.Decimal" Precision="13" Scale="2" sap:label="Net Price"/>
    <Property Name="Note" Type="Edm.String" sap:filterable="false"/>
    <Property Name="LastChangeDateTime" Type="Edm.DateTimeOffset" Precision="7"/>
   </EntityType>
   <EntityType Name="A_TextType"/>
   <EntityContainer Name="API_PRODUCT_SRV_Entities" m:IsDefaultEntityContainer="true">
    <EntitySet Name="A_Product" EntityType="API_PRODUCT_SRV.A_ProductType" sap:deletable="false" sap:label="Products"/>
   </EntityContainer>
  </Schema>
 </edmx:DataServices>
</edmx:Edmx>"#;

    #[test]
    fn a_v2_service_lists_its_sets_with_typed_properties() {
        let m = parse(V2).unwrap();
        assert_eq!(m.version, Version::V2);
        let set = &m.sets[0];
        assert_eq!(
            (set.name.as_str(), set.label.as_str()),
            ("A_Product", "Products")
        );
        assert_eq!(set.keys, ["Product"]);
        assert!(set.creatable && set.updatable && !set.deletable);
        let names: Vec<_> = set.properties.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["Product", "Price", "Note", "LastChangeDateTime"]);
        assert_eq!(set.properties[1].label, "Net Price");
        assert_eq!(set.properties[1].arrow_type(), DataType::Decimal128(13, 2));
        assert!(!set.properties[2].filterable);
        assert!(matches!(
            set.properties[3].arrow_type(),
            DataType::Timestamp(..)
        ));
    }

    #[test]
    fn sets_that_track_their_changes_are_known_in_either_version() {
        assert!(!parse(V2).unwrap().sets[0].change_tracking);
        let v2 = V2.replace(r#"sap:deletable="false""#, r#"sap:change-tracking="true""#);
        assert!(parse(&v2).unwrap().sets[0].change_tracking);

        let annotated = |annotation: &str| {
            let v4 = V2.replace(r#"Version="1.0""#, r#"Version="4.0""#).replace(
                "</Schema>",
                &format!(
                    r#"<Annotations Target="API_PRODUCT_SRV.API_PRODUCT_SRV_Entities/A_Product">{annotation}</Annotations></Schema>"#
                ),
            );
            parse(&v4).unwrap().sets[0].change_tracking
        };
        let term = r#"<Annotation Term="Org.OData.Capabilities.V1.ChangeTracking">"#;
        assert!(annotated(&format!(
            r#"{term}<Record><PropertyValue Property="Supported" Bool="true"/></Record></Annotation>"#
        )));
        assert!(!annotated(&format!(
            r#"{term}<Record><PropertyValue Property="Supported" Bool="false"/></Record></Annotation>"#
        )));
        assert!(annotated(
            r#"<Annotation Term="Capabilities.ChangeTracking"><Record/></Annotation>"#
        ));
        // Inside the set's own element.
        let inline = V2.replace(r#"Version="1.0""#, r#"Version="4.0""#).replace(
            r#"sap:label="Products"/>"#,
            &format!(r#"sap:label="Products">{term}<Record><PropertyValue Property="Supported" Bool="true"/></Record></Annotation></EntitySet>"#),
        );
        assert!(parse(&inline).unwrap().sets[0].change_tracking);
    }

    #[test]
    fn a_v4_service_is_told_apart_and_not_xml_is_said() {
        let v4 = V2.replace(r#"Version="1.0""#, r#"Version="4.0""#);
        assert_eq!(parse(&v4).unwrap().version, Version::V4);
        assert!(parse("<html><body>Login</body></html>").is_err());
    }
}
