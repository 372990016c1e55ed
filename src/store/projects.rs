//! Projects and tasks: lookups by number for the decision, and the admin commands that add and
//! list them.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use super::{Fixed, Run, Value};
use super::schema::*;
use super::{AnyConnection, StoreFail, tickets};
use crate::error::{Error, Result};
use crate::model::{CompanyRef, ProjectRef, TaskRef};
use crate::pipeline::numbers::{NumberKind, format_number};

type ProjectRow = (i64, String, String, Option<i64>, Option<String>);

fn project_ref((id, number, name, cid, cname): ProjectRow) -> ProjectRef {
    ProjectRef {
        id,
        number,
        name,
        company: match (cid, cname) {
            (Some(id), Some(name)) => Some(CompanyRef { id, name }),
            _ => None,
        },
    }
}

/// Projects by number.
pub fn projects_by_numbers(conn: &mut AnyConnection, numbers: &[String]) -> Result<Vec<ProjectRef>> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<ProjectRow> = projects::table
        .left_join(companies::table)
        .filter(projects::number.eq_any(numbers))
        .select((projects::id, projects::number, projects::name, projects::company_id, companies::name.nullable()))
        .load_on(conn)?;
    Ok(rows.into_iter().map(project_ref).collect())
}

/// Tasks by number, with their projects.
pub fn tasks_by_numbers(conn: &mut AnyConnection, numbers: &[String]) -> Result<Vec<TaskRef>> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64, String, String, i64)> = tasks::table
        .filter(tasks::number.eq_any(numbers))
        .select((tasks::id, tasks::number, tasks::title, tasks::project_id))
        .load_on(conn)?;
    let mut out = Vec::new();
    for (id, number, title, project_id) in rows {
        let row: Option<ProjectRow> = projects::table
            .left_join(companies::table)
            .filter(projects::id.eq(project_id))
            .select((projects::id, projects::number, projects::name, projects::company_id, companies::name.nullable()))
            .first_on(conn)
            .optional()?;
        if let Some(p) = row {
            out.push(TaskRef { id, number, title, project: project_ref(p) });
        }
    }
    Ok(out)
}

/// Add a project for a company; returns its number.
pub fn add_project(conn: &mut AnyConnection, name: &str, company: Option<&str>, day: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Usage("a project needs a name".into()));
    }
    let company_id = match company {
        Some(c) => Some(super::directory::require_company(conn, c)?.id),
        None => None,
    };
    let status = super::conf::defaults(conn)?.status_id;
    let now = Utc::now().naive_utc();
    let seq = tickets::next_in_sequence(conn, "P", day).map_err(Error::from)?;
    let number = format_number(NumberKind::Project, day, seq);
    diesel::insert_into(projects::table)
        .values((
            projects::number.eq(&number),
            projects::name.eq(name),
            projects::company_id.eq(company_id),
            projects::status_id.eq(status),
            projects::created_at.eq(now),
            projects::updated_at.eq(now),
        ))
        .execute_on(conn)?;
    Ok(number)
}

/// Add a task to a project (by number); returns its number.
pub fn add_task(conn: &mut AnyConnection, project: &str, title: &str, assigned: Option<&str>, day: &str) -> Result<String> {
    let title = title.trim();
    if title.is_empty() {
        return Err(Error::Usage("a task needs a title".into()));
    }
    let project_number = project.trim().to_ascii_uppercase();
    let p = projects_by_numbers(conn, std::slice::from_ref(&project_number))?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Usage(format!("no project {project_number} (see `ticketmilter project list`)")))?;
    let resource_id = match assigned {
        Some(email) => Some(
            super::directory::resource_by_email(conn, email)?
                .ok_or_else(|| Error::Usage(format!("no active resource with address {email}")))?
                .id,
        ),
        None => None,
    };
    let status = super::conf::defaults(conn)?.status_id;
    let now = Utc::now().naive_utc();
    let seq = tickets::next_in_sequence(conn, "K", day).map_err(Error::from)?;
    let number = format_number(NumberKind::Task, day, seq);
    diesel::insert_into(tasks::table)
        .values((
            tasks::number.eq(&number),
            tasks::project_id.eq(p.id),
            tasks::title.eq(title),
            tasks::description.eq(""),
            tasks::status_id.eq(status),
            tasks::assigned_resource_id.eq(resource_id),
            tasks::created_at.eq(now),
            tasks::updated_at.eq(now),
        ))
        .execute_on(conn)?;
    Ok(number)
}

/// Projects for listing: number, name, company, status.
pub fn list_projects(conn: &mut AnyConnection) -> Result<Vec<(String, String, Option<String>, String)>> {
    Ok(projects::table
        .left_join(companies::table)
        .inner_join(statuses::table.on(statuses::id.eq(projects::status_id)))
        .order(projects::id.desc())
        .select((projects::number, projects::name, companies::name.nullable(), statuses::name))
        .load_on(conn)?)
}

/// Tasks for listing: number, project number, title, status, assigned resource.
pub fn list_tasks(conn: &mut AnyConnection) -> Result<Vec<(String, String, String, String, Option<String>)>> {
    let rows: Vec<(String, i64, String, String, Option<i64>)> = tasks::table
        .inner_join(statuses::table.on(statuses::id.eq(tasks::status_id)))
        .order(tasks::id.desc())
        .select((tasks::number, tasks::project_id, tasks::title, statuses::name, tasks::assigned_resource_id))
        .load_on(conn)?;
    let mut out = Vec::new();
    for (number, pid, title, status, rid) in rows {
        let pnum: String = projects::table.find(pid).select(projects::number).first_on(conn)?;
        let who: Option<String> = match rid {
            Some(r) => resources::table.find(r).select(resources::email).first_on(conn).optional()?,
            None => None,
        };
        out.push((number, pnum, title, status, who));
    }
    Ok(out)
}

/// Set a task's status.
pub fn set_task_status(conn: &mut AnyConnection, task_id: i64, status_id: i64, now: NaiveDateTime) -> Result<(), StoreFail> {
    Fixed::<()>::new(
        "UPDATE tasks SET status_id = ?, updated_at = ? WHERE id = ?",
        &[Value::Int(status_id), Value::Time(now), Value::Int(task_id)],
    )
    .execute_on(conn)?;
    Ok(())
}

/// Add a role or work type.
pub fn add_role(conn: &mut AnyConnection, name: &str, rate: Option<f64>) -> Result<i64> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Usage("a role needs a name".into()));
    }
    diesel::insert_into(roles::table)
        .values((roles::name.eq(name), roles::hourly_rate.eq(rate), roles::is_default.eq(false), roles::active.eq(true)))
        .returning(roles::id)
        .get_result_on(conn)
        .map_err(|e| if super::is_unique_violation(&e) { Error::Usage(format!("a role named {name:?} exists")) } else { e.into() })
}

pub fn add_work_type(conn: &mut AnyConnection, name: &str, billable: bool) -> Result<i64> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Usage("a work type needs a name".into()));
    }
    diesel::insert_into(work_types::table)
        .values((work_types::name.eq(name), work_types::billable.eq(billable), work_types::is_default.eq(false), work_types::active.eq(true)))
        .returning(work_types::id)
        .get_result_on(conn)
        .map_err(|e| if super::is_unique_violation(&e) { Error::Usage(format!("a work type named {name:?} exists")) } else { e.into() })
}

/// Roles for listing: id, name, rate, default, active.
pub fn list_roles(conn: &mut AnyConnection) -> Result<Vec<(i64, String, Option<f64>, bool, bool)>> {
    Ok(roles::table
        .order(roles::id)
        .select((roles::id, roles::name, roles::hourly_rate, roles::is_default, roles::active))
        .load_on(conn)?)
}

/// Work types for listing: id, name, billable, default, active.
pub fn list_work_types(conn: &mut AnyConnection) -> Result<Vec<(i64, String, bool, bool, bool)>> {
    Ok(work_types::table
        .order(work_types::id)
        .select((work_types::id, work_types::name, work_types::billable, work_types::is_default, work_types::active))
        .load_on(conn)?)
}
