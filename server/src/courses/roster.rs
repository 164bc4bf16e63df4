//! Reading a roster CSV: one `username[,role]` per line. Every line is
//! checked on its own (a bad line never hides the next one's result); the
//! service then decides what each valid line does and applies all of them
//! or none.

use std::collections::HashSet;

use campus_protocol::{CourseRole, ErrorCode, NewAccount, Role, RosterLine};

use super::catalog::CatalogView;
use crate::error::AppError;
use crate::store::{DynStore, NewUser, RosterChange, StoreError};

/// Most lines one import may have.
pub const MAX_LINES: usize = 5_000;

/// One non-empty line, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub line: u32,
    /// The username, if one could be read.
    pub username: Option<String>,
    /// The role (default student), if the line is valid.
    pub role: Option<CourseRole>,
    /// Why the line is invalid.
    pub error: Option<String>,
}

/// Read `csv`. A first line `username` or `username,role` (any case) is a
/// header and skipped; blank lines and lines starting with `#` are skipped;
/// fields may be quoted with `"`. Refused as a whole only when it has more
/// than [`MAX_LINES`] lines.
pub fn parse(csv: &str) -> Result<Vec<Line>, String> {
    let mut out: Vec<Line> = Vec::new();
    let mut header_possible = true;
    for (i, raw) in csv.lines().enumerate() {
        if i >= MAX_LINES {
            return Err(format!(
                "a roster may have at most {MAX_LINES} lines; split it into several imports"
            ));
        }
        let text = raw.trim().trim_start_matches('\u{feff}');
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let fields: Vec<String> = text.split(',').map(unquote).collect();
        if header_possible {
            header_possible = false;
            let lower: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
            if lower == ["username"] || lower == ["username", "role"] {
                continue;
            }
        }
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        out.push(read_line(number, &fields));
    }
    // A username listed twice: the later lines are invalid (which one was meant?).
    let mut seen = std::collections::HashMap::new();
    for l in &mut out {
        let Some(name) = l.username.clone().filter(|_| l.error.is_none()) else {
            continue;
        };
        match seen.get(&name) {
            Some(first) => {
                l.error = Some(format!("{name} is already on line {first}"));
                l.role = None;
            }
            None => {
                seen.insert(name, l.line);
            }
        }
    }
    Ok(out)
}

fn unquote(field: &str) -> String {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(f)
        .trim()
        .to_string()
}

fn read_line(line: u32, fields: &[String]) -> Line {
    let invalid = |username: Option<String>, error: String| Line {
        line,
        username,
        role: None,
        error: Some(error),
    };
    if fields.len() > 2 {
        return invalid(
            fields.first().cloned(),
            format!("expected username[,role], found {} fields", fields.len()),
        );
    }
    let username = fields[0].clone();
    if !crate::auth::is_valid_username(&username) {
        return invalid(
            Some(username),
            "a username is 1-64 of a-z A-Z 0-9 . _ -".into(),
        );
    }
    let role = match fields.get(1).map(String::as_str) {
        None | Some("") => CourseRole::Student,
        Some(r) => match r.to_ascii_lowercase().parse() {
            Ok(role) => role,
            Err(e) => return invalid(Some(username), e),
        },
    };
    Line {
        line,
        username: Some(username),
        role: Some(role),
        error: None,
    }
}

/// Most accounts one import may create (each costs an argon2 hash).
pub const MAX_NEW_ACCOUNTS: usize = 500;

/// What an import would do: each line's result, and the change if every line is valid.
#[derive(Debug, Default)]
pub struct Plan {
    /// One result per non-empty line.
    pub lines: Vec<RosterLine>,
    /// (username, role) to set.
    pub members: Vec<(String, CourseRole)>,
    /// Usernames to create accounts for.
    pub create: Vec<String>,
}

impl Plan {
    /// Every line is valid.
    pub fn valid(&self) -> bool {
        self.lines.iter().all(|l| l.error.is_none())
    }
}

/// Decide what each line does: `existing` is a username's current role in
/// the course, `accounts` every username that has an account.
pub fn plan(
    lines: Vec<Line>,
    existing: impl Fn(&str) -> Option<CourseRole>,
    accounts: &HashSet<String>,
    create_accounts: bool,
) -> Plan {
    let mut plan = Plan::default();
    for l in lines {
        let mut out = RosterLine {
            line: l.line,
            username: l.username.clone(),
            role: l.role,
            outcome: "invalid".into(),
            error: l.error.clone(),
        };
        if let (Some(name), Some(role), None) = (&l.username, l.role, &l.error) {
            match existing(name) {
                Some(r) if r == role => out.outcome = "unchanged".into(),
                Some(_) => {
                    out.outcome = "change_role".into();
                    plan.members.push((name.clone(), role));
                }
                None if accounts.contains(name) => {
                    out.outcome = "enroll".into();
                    plan.members.push((name.clone(), role));
                }
                None if create_accounts => {
                    out.outcome = "create_account".into();
                    plan.create.push(name.clone());
                    plan.members.push((name.clone(), role));
                }
                None => {
                    out.error = Some(format!(
                        "no account {name:?} (choose \"create accounts\" to create it)"
                    ));
                }
            }
        }
        plan.lines.push(out);
    }
    plan
}

/// Mark the plan invalid if it would leave the course (`course_id` of
/// `view`) without a professor: the lines demoting its last ones get the error.
pub fn keep_a_professor(plan: &mut Plan, view: &CatalogView, course_id: i64) {
    let role_after = |name: &str, now: CourseRole| {
        plan.members
            .iter()
            .find(|(n, _)| n == name)
            .map_or(now, |(_, r)| *r)
    };
    let current: Vec<(String, CourseRole)> = view
        .members(course_id)
        .map(|m| (m.username.clone(), m.role))
        .collect();
    let stays = current
        .iter()
        .any(|(n, r)| role_after(n, *r) == CourseRole::Professor);
    let gains = plan
        .members
        .iter()
        .any(|(n, r)| *r == CourseRole::Professor && !current.iter().any(|(c, _)| c == n));
    if stays || gains || !current.iter().any(|(_, r)| *r == CourseRole::Professor) {
        return;
    }
    let was_professor = |name: &Option<String>| {
        current
            .iter()
            .any(|(n, r)| Some(n) == name.as_ref() && *r == CourseRole::Professor)
    };
    for l in &mut plan.lines {
        if l.outcome == "change_role" && was_professor(&l.username) {
            l.error = Some("the course would have no professor left; keep one".into());
            l.outcome = "invalid".into();
        }
    }
}

/// Read `csv` and plan its import into `course_id` of `view` (one query for
/// every account, not one per line). A CSV too long is `bad_request`.
pub async fn plan_import(
    store: &DynStore,
    view: &CatalogView,
    course_id: i64,
    csv: &str,
    create_accounts: bool,
) -> Result<Plan, AppError> {
    let lines = parse(csv).map_err(|e| AppError::new(ErrorCode::BadRequest, e))?;
    let accounts: HashSet<String> = store
        .list_users()
        .await?
        .into_iter()
        .map(|u| u.username)
        .collect();
    Ok(plan(
        lines,
        |name| view.member_named(course_id, name).map(|m| m.role),
        &accounts,
        create_accounts,
    ))
}

/// Apply a valid plan in one transaction: hash the new accounts' initial
/// passwords (on the blocking pool), create them and set the members.
/// Returns the new accounts with their passwords.
pub async fn apply(
    store: &DynStore,
    course_id: i64,
    plan: Plan,
) -> Result<Vec<NewAccount>, AppError> {
    if plan.create.len() > MAX_NEW_ACCOUNTS {
        return Err(AppError::new(
            ErrorCode::BadRequest,
            format!("one import may create at most {MAX_NEW_ACCOUNTS} accounts"),
        ));
    }
    let create = plan.create;
    let made = tokio::task::spawn_blocking(move || {
        create
            .into_iter()
            .map(|name| {
                let password = crate::auth::password::random_password();
                crate::auth::password::hash(&password).map(|hash| (name, password, hash))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)?;
    let mut change = RosterChange {
        members: plan.members,
        ..RosterChange::default()
    };
    let mut accounts = Vec::with_capacity(made.len());
    for (name, password, hash) in made {
        change.new_accounts.push(NewUser {
            username: name.clone(),
            password_hash: hash,
            role: Role::Student,
        });
        accounts.push(NewAccount {
            username: name,
            password,
        });
    }
    store
        .apply_roster(course_id, change)
        .await
        .map_err(|e| match e {
            StoreError::Conflict | StoreError::NotFound => AppError::new(
                ErrorCode::Conflict,
                "accounts changed while importing; nothing was applied, import again",
            ),
            e => e.into(),
        })?;
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_its_own_result() {
        let csv =
            "Username,Role\n\nann\nbob, TA\n\"cy\",student\nbo b\nann\nzed,dean\n# note\nx,y,z\n";
        let lines = parse(csv).unwrap();
        let summary: Vec<_> = lines
            .iter()
            .map(|l| (l.line, l.username.as_deref(), l.role, l.error.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                (3, Some("ann"), Some(CourseRole::Student), false),
                (4, Some("bob"), Some(CourseRole::Ta), false),
                (5, Some("cy"), Some(CourseRole::Student), false),
                (6, Some("bo b"), None, true),
                (7, Some("ann"), None, true),
                (8, Some("zed"), None, true),
                (10, Some("x"), None, true),
            ]
        );
        assert_eq!(lines[4].error.as_deref(), Some("ann is already on line 3"));
    }

    #[test]
    fn a_header_only_counts_on_the_first_line() {
        let lines = parse("ann\nusername\n").unwrap();
        assert_eq!(lines.len(), 2, "a user may be called username");
        assert!(parse(&"a\n".repeat(MAX_LINES + 1)).is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
