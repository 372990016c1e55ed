//! Companies, contacts and resources: the sender lookups a decision needs, and the admin
//! commands that add and list them.

use chrono::Utc;
use diesel::prelude::*;

use super::Run;
use super::AnyConnection;
use super::schema::*;
use super::sqlfn::{lower, lower_nullable};
use crate::error::{Error, Result};
use crate::model::{CompanyRef, ContactRef, ResourceRef};

/// The first active resource with this address (case-insensitive).
pub fn resource_by_email(conn: &mut AnyConnection, email: &str) -> Result<Option<ResourceRef>> {
    // `.load` rather than `.first`: a bound LIMIT makes SQLite re-prepare the statement on
    // every call (it plans with the limit's value), and these lookups run for every message.
    let row: Option<(i64, String)> = resources::table
        .filter(lower(resources::email).eq(lower(email)))
        .filter(resources::active.eq(true))
        .order(resources::id)
        .select((resources::id, resources::name))
        .load_on(conn)?
        .into_iter()
        .next();
    Ok(row.map(|(id, name)| ResourceRef { id, name }))
}

/// The first active contact of an active company with this address in any of its three fields.
pub fn contact_by_email(conn: &mut AnyConnection, email: &str) -> Result<Option<ContactRef>> {
    let row: Option<(i64, String, i64, String)> = contacts::table
        .inner_join(companies::table)
        .filter(
            lower_nullable(contacts::email1)
                .eq(lower(email).nullable())
                .or(lower_nullable(contacts::email2).eq(lower(email).nullable()))
                .or(lower_nullable(contacts::email3).eq(lower(email).nullable())),
        )
        .filter(contacts::active.eq(true))
        .filter(companies::active.eq(true))
        .order(contacts::id)
        .select((contacts::id, contacts::name, companies::id, companies::name))
        .load_on(conn)?
        .into_iter()
        .next();
    Ok(row.map(|(id, name, cid, cname)| ContactRef {
        id,
        name,
        company: CompanyRef { id: cid, name: cname },
    }))
}

/// Active companies whose web domain is `domain` (at most two: one is a match, two are not).
pub fn companies_by_domain(conn: &mut AnyConnection, domain: &str) -> Result<Vec<CompanyRef>> {
    let rows: Vec<(i64, String)> = companies::table
        .filter(lower_nullable(companies::web_domain).eq(lower(domain).nullable()))
        .filter(companies::active.eq(true))
        .order(companies::id)
        .select((companies::id, companies::name))
        .load_on(conn)?;
    Ok(rows.into_iter().map(|(id, name)| CompanyRef { id, name }).collect())
}

/// A company by name (case-insensitive), active or not.
pub fn company_by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<(CompanyRef, bool)>> {
    let row: Option<(i64, String, bool)> = companies::table
        .filter(lower(companies::name).eq(lower(name.trim())))
        .select((companies::id, companies::name, companies::active))
        .first_on(conn)
        .optional()?;
    Ok(row.map(|(id, name, active)| (CompanyRef { id, name }, active)))
}

/// Like `company_by_name`, but a missing company is a usage error naming it.
pub fn require_company(conn: &mut AnyConnection, name: &str) -> Result<CompanyRef> {
    company_by_name(conn, name)?
        .map(|(c, _)| c)
        .ok_or_else(|| Error::Usage(format!("no company named {name:?} (add it with `ticketmilter company add`)")))
}

fn check_email(email: &str) -> Result<String> {
    let e = email.trim();
    match e.split_once('@') {
        Some((l, d)) if !l.is_empty() && d.contains('.') && !e.contains(char::is_whitespace) => Ok(e.to_string()),
        _ => Err(Error::Usage(format!("{email:?} is not a mail address"))),
    }
}

fn unique_or(e: diesel::result::Error, what: String) -> Error {
    if super::is_unique_violation(&e) {
        Error::Usage(what)
    } else {
        e.into()
    }
}

/// Add a company.
pub fn add_company(conn: &mut AnyConnection, name: &str, domain: Option<&str>) -> Result<i64> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Usage("a company needs a name".into()));
    }
    let domain = domain.map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase());
    if let Some(d) = &domain {
        if d.is_empty() || !d.contains('.') || d.contains(char::is_whitespace) {
            return Err(Error::Usage(format!("{d:?} is not a mail domain")));
        }
    }
    diesel::insert_into(companies::table)
        .values((
            companies::name.eq(name),
            companies::web_domain.eq(domain),
            companies::active.eq(true),
            companies::created_at.eq(Utc::now().naive_utc()),
        ))
        .returning(companies::id)
        .get_result_on(conn)
        .map_err(|e| unique_or(e, format!("a company named {name:?} already exists")))
}

/// Company rows for listing: id, name, web domain, active, number of contacts.
pub fn list_companies(conn: &mut AnyConnection) -> Result<Vec<(i64, String, Option<String>, bool)>> {
    Ok(companies::table
        .order(companies::name)
        .select((companies::id, companies::name, companies::web_domain, companies::active))
        .load_on(conn)?)
}

/// Add a contact to a company.
pub fn add_contact(
    conn: &mut AnyConnection,
    email: &str,
    company: &str,
    name: Option<&str>,
    more: &[String],
) -> Result<i64> {
    let email = check_email(email)?;
    let more: Vec<String> = more.iter().map(|m| check_email(m)).collect::<Result<_>>()?;
    if more.len() > 2 {
        return Err(Error::Usage("a contact has at most three addresses".into()));
    }
    let company = require_company(conn, company)?;
    if let Some(existing) = contact_by_email(conn, &email)? {
        return Err(Error::Usage(format!(
            "{email} is already the address of contact {:?} of {}",
            existing.name, existing.company.name
        )));
    }
    let name = name.map(str::trim).unwrap_or_default();
    Ok(diesel::insert_into(contacts::table)
        .values((
            contacts::company_id.eq(company.id),
            contacts::name.eq(name),
            contacts::email1.eq(Some(email)),
            contacts::email2.eq(more.first()),
            contacts::email3.eq(more.get(1)),
            contacts::active.eq(true),
            contacts::created_at.eq(Utc::now().naive_utc()),
        ))
        .returning(contacts::id)
        .get_result_on(conn)?)
}

/// Contact rows for listing: id, name, addresses, company, active.
pub fn list_contacts(conn: &mut AnyConnection) -> Result<Vec<(i64, String, Vec<String>, String, bool)>> {
    let rows: Vec<(i64, String, Option<String>, Option<String>, Option<String>, String, bool)> =
        contacts::table
            .inner_join(companies::table)
            .order((companies::name, contacts::name, contacts::id))
            .select((
                contacts::id,
                contacts::name,
                contacts::email1,
                contacts::email2,
                contacts::email3,
                companies::name,
                contacts::active,
            ))
            .load_on(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, name, a, b, c, company, active)| {
            (id, name, [a, b, c].into_iter().flatten().collect(), company, active)
        })
        .collect())
}

/// Add a resource (staff member).
pub fn add_resource(conn: &mut AnyConnection, email: &str, name: Option<&str>) -> Result<i64> {
    let email = check_email(email)?;
    if resource_by_email(conn, &email)?.is_some() {
        return Err(Error::Usage(format!("a resource with address {email} already exists")));
    }
    Ok(diesel::insert_into(resources::table)
        .values((
            resources::name.eq(name.map(str::trim).unwrap_or_default()),
            resources::email.eq(email),
            resources::active.eq(true),
            resources::created_at.eq(Utc::now().naive_utc()),
        ))
        .returning(resources::id)
        .get_result_on(conn)?)
}

/// Resource rows for listing: id, name, address, active.
pub fn list_resources(conn: &mut AnyConnection) -> Result<Vec<(i64, String, String, bool)>> {
    Ok(resources::table
        .order(resources::id)
        .select((resources::id, resources::name, resources::email, resources::active))
        .load_on(conn)?)
}

/// The id of a contact: an existing one, or one created now (an address already on file in the
/// same company is reused rather than duplicated).
pub fn ensure_contact(
    conn: &mut AnyConnection,
    choice: &crate::model::ContactChoice,
    now: chrono::NaiveDateTime,
) -> std::result::Result<i64, super::StoreFail> {
    use crate::model::ContactChoice;
    match choice {
        ContactChoice::Existing(id) => Ok(*id),
        ContactChoice::Create(nc) => {
            let existing: Option<i64> = contacts::table
                .filter(contacts::company_id.eq(nc.company_id))
                .filter(
                    lower_nullable(contacts::email1)
                        .eq(lower(&nc.email).nullable())
                        .or(lower_nullable(contacts::email2).eq(lower(&nc.email).nullable()))
                        .or(lower_nullable(contacts::email3).eq(lower(&nc.email).nullable())),
                )
                .order(contacts::id)
                .select(contacts::id)
                .first_on(conn)
                .optional()?;
            if let Some(id) = existing {
                return Ok(id);
            }
            Ok(diesel::insert_into(contacts::table)
                .values((
                    contacts::company_id.eq(nc.company_id),
                    contacts::name.eq(&nc.name),
                    contacts::email1.eq(Some(&nc.email)),
                    contacts::active.eq(true),
                    contacts::created_at.eq(now),
                ))
                .returning(contacts::id)
                .get_result_on(conn)?)
        }
    }
}

/// Active contacts (of active companies) among these addresses, with the address each matched.
pub fn contacts_by_emails(conn: &mut AnyConnection, emails: &[String]) -> Result<Vec<(String, ContactRef)>> {
    let mut out = Vec::new();
    for e in emails.iter().take(50) {
        if let Some(c) = contact_by_email(conn, e)? {
            if !out.iter().any(|(_, x): &(String, ContactRef)| x.id == c.id) {
                out.push((e.clone(), c));
            }
        }
    }
    Ok(out)
}

/// An active company by name (case-insensitive).
pub fn active_company_by_name(conn: &mut AnyConnection, name: &str) -> Result<Option<CompanyRef>> {
    Ok(company_by_name(conn, name)?.filter(|(_, active)| *active).map(|(c, _)| c))
}
