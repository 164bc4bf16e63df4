//! The course requests, one function each: look the course and the caller's
//! standing up in the catalog, authorize, do it (blocking file work on the
//! blocking pool), reload the catalog after a change, tell the members.

use std::sync::Arc;

use campus_protocol::{
    ChangeKind, CourseInfo, CourseMsg, CourseRequest, CourseRole, CourseSummary, EntryKind,
    ErrorCode, ExceptionInfo, MemberInfo, ReleaseInfo, Role, RunSummary, SectionInfo, SectionState,
    ServerMsg, UserInfo,
};
use workspace_fs::{Precondition, Workspace};

use super::catalog::CatalogView;
use super::{roster, visibility, CourseService, Standing};
use crate::authz::{self, CourseAction};
use crate::error::AppError;
use crate::files::{self, blocking};
use crate::store::{now_ms, Course, MaterialRelease, NewCourse, SectionException, SectionFields};

/// Most files and folders with their own visibility in one section.
const MAX_RELEASES: usize = 200;

/// Most entries one material listing returns.
const MAX_LISTING: usize = workspace_fs::MAX_PAGE_ENTRIES;

fn bad(msg: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::BadRequest, msg)
}

/// A course slug: 1–32 of `a-z 0-9 -`, starting with a letter or digit.
pub fn valid_slug(slug: &str) -> bool {
    !slug.is_empty()
        && slug.len() <= 32
        && !slug.starts_with('-')
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A section folder: one name that can also be a mount name.
pub fn valid_folder(folder: &str) -> bool {
    crate::sandbox::valid_mount_name(folder) && !folder.contains('/')
}

fn text_field(what: &str, value: &str, max: usize) -> Result<String, AppError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(bad(format!(
            "{what} must be 1-{max} characters without control characters"
        )));
    }
    Ok(v.to_string())
}

impl CourseService {
    /// Do one course request of `user` on connection `conn`.
    pub async fn handle(
        &self,
        user: &UserInfo,
        conn: &str,
        req: CourseRequest,
    ) -> Result<ServerMsg, AppError> {
        self.files.charge(user.id, 1)?;
        let msg = match req {
            CourseRequest::CourseList { id } => self.list(id, user).await?,
            CourseRequest::CourseCreate {
                id,
                slug,
                title,
                term,
            } => self.create(id, user, slug, title, term).await?,
            CourseRequest::CourseOpen { id, course } => {
                let (view, st) = self.enter(user, &course, CourseAction::View).await?;
                CourseMsg::Course {
                    id,
                    course: self.info(&view, user, &st),
                }
            }
            CourseRequest::CourseListFiles { id, course, path } => {
                self.list_files(id, user, course, path).await?
            }
            CourseRequest::CourseRead { id, course, path } => {
                let (view, st) = self.enter(user, &course, CourseAction::View).await?;
                self.check_visible(&view, user, &st, &path)?;
                let ws = self.material(st.course.id).await?;
                let p = path.clone();
                let (bytes, e) = blocking(ws, move |w| w.read(&p)).await?;
                file_msg(id, course, None, path, (e.version, e.mime), bytes)
            }
            CourseRequest::CourseWrite {
                id,
                course,
                path,
                content,
                encoding,
                base_version,
            } => {
                let bytes = files::decode_content(content, encoding)?;
                let pre = match base_version {
                    Some(v) => Precondition::Match(v),
                    None => Precondition::CreateOnly,
                };
                let (view, st_course, ws) = self.for_edit(user, &course).await?;
                let p = path.clone();
                let out = blocking(ws, move |w| w.write(&p, &bytes, pre)).await?;
                self.material_changed(user, &view, &st_course, &path, "write");
                CourseMsg::CourseWritten {
                    id,
                    course,
                    path,
                    version: out.entry.version,
                }
            }
            CourseRequest::CourseMkdir { id, course, path } => {
                self.edit_tree(id, user, course, path, "mkdir").await?
            }
            CourseRequest::CourseDelete { id, course, path } => {
                self.edit_tree(id, user, course, path, "delete").await?
            }
            CourseRequest::CourseCopy {
                id,
                course,
                path,
                to,
            } => self.copy(id, user, conn, course, path, to).await?,
            CourseRequest::SectionSave {
                id,
                course,
                section,
                folder,
                title,
                kind,
                position,
                published,
                release_at_ms,
                close_at_ms,
            } => {
                let (view, st) = self.enter(user, &course, CourseAction::Edit).await?;
                self.allow(user, &st, CourseAction::Publish)?;
                if !valid_folder(&folder) {
                    return Err(bad("a section's folder is one name of letters, digits, '.', '_' or '-' (not starting with '.')"));
                }
                if let (Some(r), Some(c)) = (release_at_ms, close_at_ms) {
                    if c <= r {
                        return Err(bad("the close time must be after the release time"));
                    }
                }
                let course_id = st.course.id;
                let before = section.and_then(|s| view.section(course_id, s)).cloned();
                if section.is_some() && before.is_none() {
                    return Err(AppError::new(ErrorCode::NotFound, "no such section"));
                }
                let last = view.sections(course_id).iter().map(|s| s.position).max();
                let fields = SectionFields {
                    folder: folder.clone(),
                    title: text_field("a title", &title, 200)?,
                    kind: text_field("a kind", &kind, 40)?,
                    // Absent: where it is, or after the last for a new one.
                    position: position
                        .or(before.as_ref().map(|b| b.position))
                        .unwrap_or(last.unwrap_or(0).saturating_add(1)),
                    published,
                    release_at_ms,
                    close_at_ms,
                };
                let ws = self.material(course_id).await?;
                let f = folder.clone();
                blocking(ws, move |w| match w.stat(&f) {
                    Ok(_) => Ok(()),
                    Err(workspace_fs::FsError::NotFound(_)) => w.mkdir(&f).map(|_| ()),
                    Err(e) => Err(e),
                })
                .await?;
                let saved = match section {
                    Some(s) => self.store.update_section(s, fields).await,
                    None => self.store.create_section(course_id, fields).await,
                }
                .map_err(|e| match e {
                    crate::store::StoreError::Conflict => AppError::new(
                        ErrorCode::Conflict,
                        format!("another section already uses the folder {folder:?}"),
                    ),
                    e => e.into(),
                })?;
                self.audit(
                    user,
                    "course.section_save",
                    &course,
                    format!(
                        "section {} {:?}: published {} → {}, release {:?}, close {:?}",
                        saved.id,
                        saved.folder,
                        before.as_ref().is_some_and(|b| b.published),
                        saved.published,
                        saved.release_at_ms,
                        saved.close_at_ms
                    ),
                );
                self.after_change(id, user, &course).await?
            }
            CourseRequest::SectionDelete {
                id,
                course,
                section,
            } => {
                let (view, st) = self.enter(user, &course, CourseAction::Edit).await?;
                let s = view
                    .section(st.course.id, section)
                    .cloned()
                    .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such section"))?;
                let ws = self.material(st.course.id).await?;
                let folder = s.folder.clone();
                // The folder goes to the course's trash (restorable), then the section row.
                blocking(ws, move |w| match w.delete(&folder) {
                    Ok(_) | Err(workspace_fs::FsError::NotFound(_)) => Ok(()),
                    Err(e) => Err(e),
                })
                .await?;
                self.store.delete_section(section).await?;
                self.audit(
                    user,
                    "course.section_delete",
                    &course,
                    format!("section {section} {:?}", s.folder),
                );
                self.after_change(id, user, &course).await?
            }
            CourseRequest::ExceptionSet {
                id,
                course,
                section,
                username,
                release_at_ms,
                close_at_ms,
            } => {
                let (section_id, user_id) = self
                    .exception_target(user, &course, section, &username)
                    .await?;
                self.store
                    .set_exception(SectionException {
                        section_id,
                        user_id,
                        release_at_ms,
                        close_at_ms,
                    })
                    .await?;
                self.audit(
                    user,
                    "course.exception_set",
                    &course,
                    format!("section {section} {username}: release {release_at_ms:?}, close {close_at_ms:?}"),
                );
                self.after_change(id, user, &course).await?
            }
            CourseRequest::ExceptionRemove {
                id,
                course,
                section,
                username,
            } => {
                let (section_id, user_id) = self
                    .exception_target(user, &course, section, &username)
                    .await?;
                self.store.remove_exception(section_id, user_id).await?;
                self.audit(
                    user,
                    "course.exception_remove",
                    &course,
                    format!("section {section} {username}"),
                );
                self.after_change(id, user, &course).await?
            }
            CourseRequest::ReleaseSet {
                id,
                course,
                path,
                published,
                release_at_ms,
                close_at_ms,
            } => {
                if let (Some(r), Some(c)) = (release_at_ms, close_at_ms) {
                    if c <= r {
                        return Err(bad("the close time must be after the release time"));
                    }
                }
                let (section_id, rel) = self.release_target(user, &course, &path).await?;
                let view = self.cache.get().await?;
                let count = view.releases(section_id).len();
                let replaces = view.releases(section_id).iter().any(|r| r.path == rel);
                if !replaces && count >= MAX_RELEASES {
                    return Err(AppError::new(
                        ErrorCode::TooLarge,
                        format!("a section has at most {MAX_RELEASES} files with their own visibility; group them in a folder and set the folder's"),
                    ));
                }
                self.store
                    .set_release(MaterialRelease {
                        section_id,
                        path: rel.clone(),
                        published,
                        release_at_ms,
                        close_at_ms,
                    })
                    .await?;
                self.audit(
                    user,
                    "course.release_set",
                    &course,
                    format!("{path}: published {published}, release {release_at_ms:?}, close {close_at_ms:?}"),
                );
                self.after_change(id, user, &course).await?
            }
            CourseRequest::ReleaseRemove { id, course, path } => {
                let (section_id, rel) = self.release_target(user, &course, &path).await?;
                self.store
                    .remove_release(section_id, &rel)
                    .await
                    .map_err(|e| match e {
                        crate::store::StoreError::NotFound => AppError::new(
                            ErrorCode::NotFound,
                            format!("{path} has no visibility of its own"),
                        ),
                        e => e.into(),
                    })?;
                self.audit(user, "course.release_remove", &course, path.clone());
                self.after_change(id, user, &course).await?
            }
            CourseRequest::RosterGet { id, course } => {
                let (view, st) = self
                    .enter(user, &course, CourseAction::ListStudents)
                    .await?;
                roster_msg(id, &view, &st.course)
            }
            CourseRequest::Enroll {
                id,
                course,
                username,
                role,
            } => {
                let (view, st) = self
                    .enter(user, &course, CourseAction::ManageRoster)
                    .await?;
                let target = self
                    .store
                    .user_by_username(&username)
                    .await?
                    .ok_or_else(|| {
                        AppError::new(ErrorCode::NotFound, format!("no account {username:?}"))
                    })?;
                let role = role.unwrap_or(CourseRole::Student);
                let was = view.role(st.course.id, target.id);
                if was == Some(CourseRole::Professor)
                    && role != CourseRole::Professor
                    && professors(&view, st.course.id) == 1
                {
                    return Err(AppError::new(
                        ErrorCode::Conflict,
                        "this is the course's only professor; add another professor first",
                    ));
                }
                self.store.set_member(st.course.id, target.id, role).await?;
                self.audit(
                    user,
                    "course.enroll",
                    &course,
                    format!("{username} as {}", role.as_str()),
                );
                self.roster_changed(id, &course).await?
            }
            CourseRequest::Unenroll {
                id,
                course,
                username,
            } => {
                let (view, st) = self
                    .enter(user, &course, CourseAction::ManageRoster)
                    .await?;
                let m = view.member_named(st.course.id, &username).ok_or_else(|| {
                    AppError::new(
                        ErrorCode::NotFound,
                        format!("{username} is not in this course"),
                    )
                })?;
                let (course_id, user_id) = (st.course.id, m.user_id);
                // The last professor stays: a course nobody may manage would need an admin.
                if m.role == CourseRole::Professor && professors(&view, course_id) == 1 {
                    return Err(AppError::new(
                        ErrorCode::Conflict,
                        "this is the course's only professor; add another professor first",
                    ));
                }
                // Their workspace is theirs and stays; only the membership goes.
                self.store.remove_member(course_id, user_id).await?;
                self.audit(user, "course.unenroll", &course, username.clone());
                let view = self.roster_changed(id, &course).await?;
                // They are no longer told by `announce`: tell them once.
                self.hub.send_to_user(
                    user_id,
                    None,
                    &ServerMsg::Courses(CourseMsg::CourseChanged { course }),
                );
                view
            }
            CourseRequest::RosterImport {
                id,
                course,
                csv,
                create_accounts,
            } => self.import(id, user, course, csv, create_accounts).await?,
            CourseRequest::StudentListFiles {
                id,
                course,
                student,
                path,
            } => {
                let ws = self.student_workspace(user, &course, &student).await?;
                let p = path.clone();
                let page = blocking(ws, move |w| w.list_page(&p, true, None, MAX_LISTING)).await?;
                CourseMsg::CourseListing {
                    id,
                    course,
                    student: Some(student),
                    path,
                    entries: page.entries.into_iter().map(files::entry).collect(),
                }
            }
            CourseRequest::StudentRead {
                id,
                course,
                student,
                path,
            } => {
                let ws = self.student_workspace(user, &course, &student).await?;
                let p = path.clone();
                let (bytes, e) = blocking(ws, move |w| w.read(&p)).await?;
                file_msg(id, course, Some(student), path, (e.version, e.mime), bytes)
            }
            CourseRequest::StudentVersions {
                id,
                course,
                student,
                path,
            } => {
                let ws = self.student_workspace(user, &course, &student).await?;
                let p = path.clone();
                let versions = blocking(ws, move |w| w.list_versions(&p)).await?;
                CourseMsg::StudentVersions {
                    id,
                    course,
                    student,
                    path,
                    versions: versions.into_iter().map(files::version).collect(),
                }
            }
            CourseRequest::StudentReadVersion {
                id,
                course,
                student,
                path,
                version,
            } => {
                let ws = self.student_workspace(user, &course, &student).await?;
                let (p, v) = (path.clone(), version.clone());
                let bytes = blocking(ws, move |w| w.read_version(&p, &v)).await?;
                // The same type a normal read of this path reports.
                let mime = Some(workspace_fs::mime_type(&path));
                file_msg(
                    id,
                    course,
                    Some(student),
                    path,
                    (Some(version), mime),
                    bytes,
                )
            }
            CourseRequest::StudentRuns {
                id,
                course,
                student,
            } => {
                let owner = self.student(user, &course, &student).await?;
                let runs = self.store.recent_runs(owner, 50).await?;
                CourseMsg::StudentRuns {
                    id,
                    course,
                    student,
                    runs: runs
                        .into_iter()
                        .map(|r| RunSummary {
                            run_id: r.id,
                            path: r.path,
                            mode: r.mode,
                            started_at_ms: r.started_at_ms,
                            ended_at_ms: r.ended_at_ms,
                            reason: r.reason,
                            exit_code: r.exit_code,
                        })
                        .collect(),
                }
            }
        };
        Ok(ServerMsg::Courses(msg))
    }

    /// The material of `slug` for streaming `path` out (HTTP), if `user` may read it.
    pub async fn material_for_read(
        &self,
        user: &UserInfo,
        slug: &str,
        path: &str,
    ) -> Result<Arc<Workspace>, AppError> {
        self.files.charge(user.id, 1)?;
        let (view, st) = self.enter(user, slug, CourseAction::View).await?;
        // The path as it will be opened (untrimmed), so the check and the read agree.
        self.check_visible(&view, user, &st, path)?;
        self.material(st.course.id).await
    }

    /// The material of `slug` for streaming a file in (HTTP), if `user` may edit it.
    pub async fn material_for_write(
        &self,
        user: &UserInfo,
        slug: &str,
    ) -> Result<Arc<Workspace>, AppError> {
        self.files.charge(user.id, 1)?;
        Ok(self.for_edit(user, slug).await?.2)
    }

    /// After a streamed upload: tell the members who can see it.
    pub fn material_written(&self, user: &UserInfo, slug: &str, path: &str) {
        let view = self.cache.snapshot();
        if let Some(course) = view.course(slug) {
            self.material_changed(user, &view, course, path, "write");
        }
    }

    async fn list(&self, id: Option<u64>, user: &UserInfo) -> Result<CourseMsg, AppError> {
        let view = self.cache.get().await?;
        let courses = if user.role == Role::Admin {
            view.courses()
                .iter()
                .map(|c| summary(c, view.role(c.id, user.id)))
                .collect()
        } else {
            view.courses_of(user.id)
                .iter()
                .filter_map(|&(cid, role)| view.course_by_id(cid).map(|c| summary(c, Some(role))))
                .collect()
        };
        Ok(CourseMsg::Courses { id, courses })
    }

    async fn create(
        &self,
        id: Option<u64>,
        user: &UserInfo,
        slug: String,
        title: String,
        term: String,
    ) -> Result<CourseMsg, AppError> {
        authz::authorize_course(user, None, CourseAction::Create)?;
        if !valid_slug(&slug) {
            return Err(bad(
                "a course's short name is 1-32 of a-z, 0-9 and '-', not starting with '-'",
            ));
        }
        let title = text_field("a title", &title, 200)?;
        let term = if term.trim().is_empty() {
            String::new()
        } else {
            text_field("a term", &term, 100)?
        };
        let course = self
            .store
            .create_course(NewCourse {
                slug: slug.clone(),
                title,
                term,
            })
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict => AppError::new(
                    ErrorCode::Conflict,
                    format!("a course called {slug:?} exists already"),
                ),
                e => e.into(),
            })?;
        if user.role == Role::Professor {
            self.store
                .set_member(course.id, user.id, CourseRole::Professor)
                .await?;
        }
        self.material(course.id).await?;
        self.audit(user, "course.create", &slug, course.title.clone());
        let view = self.cache.refresh().await?;
        let st = self.standing(&view, user, &slug)?;
        Ok(CourseMsg::Course {
            id,
            course: self.info(&view, user, &st),
        })
    }

    /// The course as `user` may see it.
    fn info(&self, view: &CatalogView, user: &UserInfo, st: &Standing) -> CourseInfo {
        let now = now_ms();
        let staff = authz::authorize_course(user, st.role, CourseAction::ReadDrafts).is_ok();
        let mut can = Vec::new();
        if authz::authorize_course(user, st.role, CourseAction::Edit).is_ok() {
            can.push("edit".to_string());
        }
        if staff {
            can.push("drafts".to_string());
        }
        if authz::authorize_course(user, st.role, CourseAction::ReadStudentWork).is_ok() {
            can.push("students".to_string());
        }
        let name_of = |uid: i64| {
            view.members(st.course.id)
                .find(|m| m.user_id == uid)
                .map(|m| m.username.clone())
        };
        let sections = view
            .sections(st.course.id)
            .iter()
            .filter_map(|s| {
                let mine = (!staff).then(|| view.exception(s.id, user.id)).flatten();
                let state = visibility::state(s, mine, now);
                if !staff && state != SectionState::Open {
                    return None;
                }
                let (release, close) = visibility::times(s, mine);
                let exceptions = if staff {
                    view.exceptions_of(s.id)
                        .filter_map(|e| {
                            Some(ExceptionInfo {
                                username: name_of(e.user_id)?,
                                release_at_ms: e.release_at_ms,
                                close_at_ms: e.close_at_ms,
                            })
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                // What this student sees of the section, worked out once for all its rules.
                let seen = (!staff)
                    .then(|| super::student_view(view, s, user.id, now))
                    .flatten();
                let releases = view
                    .releases(s.id)
                    .iter()
                    .filter_map(|r| {
                        let state = visibility::release_state(s, r, mine, now);
                        // A student hears of a rule only when they see its path
                        // (an open file inside a hidden folder stays unnamed).
                        if !staff && !seen.as_ref().is_some_and(|h| h.shows(&r.path)) {
                            return None;
                        }
                        let path = format!("{}/{}", s.folder, r.path);
                        let (release_at_ms, close_at_ms) = visibility::release_times(s, r, mine);
                        Some(ReleaseInfo {
                            path,
                            published: r.published,
                            release_at_ms,
                            close_at_ms,
                            state,
                        })
                    })
                    .collect();
                Some(SectionInfo {
                    id: s.id,
                    folder: s.folder.clone(),
                    title: s.title.clone(),
                    kind: s.kind.clone(),
                    position: s.position,
                    published: s.published,
                    release_at_ms: release,
                    close_at_ms: close,
                    state,
                    exceptions,
                    releases,
                })
            })
            .collect();
        CourseInfo {
            slug: st.course.slug.clone(),
            title: st.course.title.clone(),
            term: st.course.term.clone(),
            role: st.role,
            can,
            sections,
            now_ms: now,
        }
    }

    async fn list_files(
        &self,
        id: Option<u64>,
        user: &UserInfo,
        course: String,
        path: String,
    ) -> Result<CourseMsg, AppError> {
        let (view, st) = self.enter(user, &course, CourseAction::View).await?;
        let path = path.trim_matches('/').to_string();
        let staff = authz::authorize_course(user, st.role, CourseAction::ReadDrafts).is_ok();
        if !path.is_empty() {
            self.check_visible(&view, user, &st, &path)?;
        }
        let ws = self.material(st.course.id).await?;
        // Students at the root: each open section's folder on its own, so
        // hidden material can neither show nor crowd the page out.
        let roots = !staff && path.is_empty();
        let now = now_ms();
        let dirs: Vec<String> = if roots {
            view.sections(st.course.id)
                .iter()
                .filter(|s| super::student_view(&view, s, user.id, now).is_some())
                .map(|s| s.folder.clone())
                .collect()
        } else {
            vec![path.clone()]
        };
        let listed = blocking(ws, move |w| {
            let mut out = Vec::new();
            for dir in dirs {
                let room = MAX_LISTING.saturating_sub(out.len());
                if room == 0 {
                    break;
                }
                let page = match w.list_page(&dir, true, None, room) {
                    Ok(p) => p,
                    // An open section whose folder is gone: nothing to list.
                    Err(workspace_fs::FsError::NotFound(_)) if !dir.is_empty() => continue,
                    Err(e) => return Err(e),
                };
                // A section's own folder comes first, as in any listing of the root.
                if roots {
                    out.extend(w.stat(&dir).ok());
                }
                out.extend(page.entries);
            }
            Ok(out)
        })
        .await?;
        // What per-file rules hide from this student is left out, names and all.
        let shown = |p: &str| staff || super::shows_in(&view, st.course.id, user.id, p, now);
        let entries: Vec<_> = listed
            .into_iter()
            .filter(|e| shown(&e.path))
            .map(files::entry)
            .collect();
        Ok(CourseMsg::CourseListing {
            id,
            course,
            student: None,
            path,
            entries,
        })
    }

    /// Create (`mkdir`) or delete (to the trash) a material folder or file.
    async fn edit_tree(
        &self,
        id: Option<u64>,
        user: &UserInfo,
        course: String,
        path: String,
        what: &'static str,
    ) -> Result<CourseMsg, AppError> {
        let (view, st_course, ws) = self.for_edit(user, &course).await?;
        let p = path.clone();
        if what == "mkdir" {
            blocking(ws, move |w| w.mkdir(&p).map(|_| ())).await?;
        } else {
            blocking(ws, move |w| w.delete(&p).map(|_| ())).await?;
        }
        self.material_changed(user, &view, &st_course, &path, what);
        Ok(CourseMsg::CourseWritten {
            id,
            course,
            path,
            version: None,
        })
    }

    /// The catalog, the course and its material, for a change of material.
    async fn for_edit(
        &self,
        user: &UserInfo,
        slug: &str,
    ) -> Result<(Arc<CatalogView>, Course, Arc<Workspace>), AppError> {
        let (view, st) = self.enter(user, slug, CourseAction::Edit).await?;
        let ws = self.material(st.course.id).await?;
        Ok((view, st.course, ws))
    }

    /// After a material change: tell staff always, students when it is in a section open now.
    fn material_changed(
        &self,
        user: &UserInfo,
        view: &CatalogView,
        course: &Course,
        path: &str,
        what: &str,
    ) {
        let folder = path.split('/').next().unwrap_or_default();
        let open_to_all = view
            .section_by_folder(course.id, folder)
            .is_some_and(|s| visibility::state(s, None, now_ms()) == SectionState::Open);
        if what == "delete" {
            self.audit(user, "course.material_delete", &course.slug, path.into());
        }
        if what == "write" {
            self.end_runs_that_would_see(view, course, path);
        }
        // Students with an early release are told too: over-telling is harmless
        // (they open the course again and see the same), under-telling is not.
        let any_exception = view
            .section_by_folder(course.id, folder)
            .is_some_and(|s| view.exceptions_of(s.id).next().is_some());
        self.announce(view, course, !(open_to_all || any_exception));
    }

    /// Reload the catalog after a change to `slug`, tell its members, answer with the course.
    async fn after_change(
        &self,
        id: Option<u64>,
        user: &UserInfo,
        slug: &str,
    ) -> Result<CourseMsg, AppError> {
        let view = self.cache.refresh().await?;
        let st = self.standing(&view, user, slug)?;
        self.announce(&view, &st.course, false);
        Ok(CourseMsg::Course {
            id,
            course: self.info(&view, user, &st),
        })
    }

    /// Reload after a roster change, tell the members, answer with the roster.
    async fn roster_changed(&self, id: Option<u64>, slug: &str) -> Result<CourseMsg, AppError> {
        let view = self.cache.refresh().await?;
        let course = view
            .course(slug)
            .ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no course {slug:?}")))?;
        self.announce(&view, course, false);
        Ok(roster_msg(id, &view, course))
    }

    /// The section and the path inside it a per-file rule is about
    /// (professors only): a file or folder below a section's folder.
    async fn release_target(
        &self,
        user: &UserInfo,
        slug: &str,
        path: &str,
    ) -> Result<(i64, String), AppError> {
        let (view, st) = self.enter(user, slug, CourseAction::Edit).await?;
        self.allow(user, &st, CourseAction::Publish)?;
        // Normalized as the material stores names; the path need not exist
        // yet: a hidden file can be set hidden before it is uploaded.
        let p = workspace_fs::normalize_path(path.trim_matches('/')).into_owned();
        workspace_fs::validate_path(&p).map_err(crate::files::map_fs_error)?;
        let (folder, rel) = p.split_once('/').ok_or_else(|| {
            bad("name a file or folder inside a section's folder (a section's own visibility is set on the section)")
        })?;
        let section = view
            .section_by_folder(st.course.id, folder)
            .ok_or_else(|| bad(format!("{folder} is not a section's folder")))?;
        Ok((section.id, rel.to_string()))
    }

    /// The section and enrolled student an exception is about (professors only).
    async fn exception_target(
        &self,
        user: &UserInfo,
        slug: &str,
        section: i64,
        username: &str,
    ) -> Result<(i64, i64), AppError> {
        let (view, st) = self.enter(user, slug, CourseAction::Publish).await?;
        let s = view
            .section(st.course.id, section)
            .ok_or_else(|| AppError::new(ErrorCode::NotFound, "no such section"))?;
        let m = view
            .member_named(st.course.id, username)
            .filter(|m| m.role == CourseRole::Student)
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::NotFound,
                    format!("{username} is not a student of this course"),
                )
            })?;
        Ok((s.id, m.user_id))
    }

    /// The user id of `student`, a student of `slug`, if `user` may read their
    /// work. Only accounts that are students (global role) can be read this
    /// way: enrolling a professor or an admin as a "student" of one's own
    /// course does not open their workspace. Every read is audited.
    async fn student(&self, user: &UserInfo, slug: &str, student: &str) -> Result<i64, AppError> {
        let (view, st) = self
            .enter(user, slug, CourseAction::ReadStudentWork)
            .await?;
        let not_student = || {
            AppError::new(
                ErrorCode::NotFound,
                format!("{student} is not a student of this course"),
            )
        };
        let owner = view
            .member_named(st.course.id, student)
            .filter(|m| m.role == CourseRole::Student)
            .map(|m| m.user_id)
            .ok_or_else(not_student)?;
        let account = self
            .store
            .user_by_id(owner)
            .await?
            .ok_or_else(not_student)?;
        if account.role != Role::Student {
            return Err(not_student());
        }
        self.audit(user, "course.read_student_work", slug, student.to_string());
        Ok(owner)
    }

    /// `student`'s workspace, for reading only.
    async fn student_workspace(
        &self,
        user: &UserInfo,
        slug: &str,
        student: &str,
    ) -> Result<Arc<Workspace>, AppError> {
        let owner = self.student(user, slug, student).await?;
        self.files.workspace(owner).await
    }

    async fn copy(
        &self,
        id: Option<u64>,
        user: &UserInfo,
        conn: &str,
        course: String,
        path: String,
        to: Option<String>,
    ) -> Result<CourseMsg, AppError> {
        let (view, st) = self.enter(user, &course, CourseAction::Copy).await?;
        let path = path.trim_matches('/').to_string();
        if path.is_empty() {
            return Err(bad("name a file or folder of the course to copy"));
        }
        self.check_visible(&view, user, &st, &path)?;
        let src = self.material(st.course.id).await?;
        let dst = self.files.workspace(user.id).await?;
        let wanted = to
            .map(|t| t.trim_matches('/').to_string())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| path.rsplit('/').next().unwrap_or(&path).to_string());
        let from = path.clone();
        // A folder's hidden files stay behind (a student copies what they see).
        let staff = self.is_staff(user, &st);
        let now = now_ms();
        let (course_id, uid) = (st.course.id, user.id);
        let this = Arc::clone(&view);
        let shown = move |p: &str| staff || super::shows_in(&this, course_id, uid, p, now);
        let (to, renamed) =
            tokio::task::spawn_blocking(move || copy_across(&src, &from, &dst, &wanted, &shown))
                .await
                .map_err(AppError::internal)??;
        self.files.notify(
            user.id,
            conn,
            &to,
            ChangeKind::Copied,
            None,
            Some(format!("/course/{course}/{path}")),
        );
        Ok(CourseMsg::CourseCopied {
            id,
            course,
            from: path,
            to,
            renamed,
        })
    }

    async fn import(
        &self,
        id: Option<u64>,
        user: &UserInfo,
        course: String,
        csv: String,
        create_accounts: bool,
    ) -> Result<CourseMsg, AppError> {
        let (view, st) = self
            .enter(user, &course, CourseAction::ManageRoster)
            .await?;
        if create_accounts && user.role != Role::Admin {
            // Accounts are the administrators' (docs/courses.md): a professor
            // holding students' passwords could work as them.
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "only administrators create accounts; import existing usernames, or ask an administrator",
            ));
        }
        let course_id = st.course.id;
        let mut plan =
            roster::plan_import(&self.store, &view, course_id, &csv, create_accounts).await?;
        roster::keep_a_professor(&mut plan, &view, course_id);
        let valid = plan.valid();
        let lines = plan.lines.clone();
        let mut accounts = Vec::new();
        if valid && !plan.members.is_empty() {
            let n = plan.members.len();
            accounts = roster::apply(&self.store, course_id, plan).await?;
            self.audit(
                user,
                "course.roster_import",
                &course,
                format!("{n} members set, {} accounts created", accounts.len()),
            );
            self.roster_changed(None, &course).await?;
        }
        Ok(CourseMsg::RosterResult {
            id,
            course,
            applied: valid,
            lines,
            accounts,
        })
    }
}

/// How many professors `course` has.
fn professors(view: &CatalogView, course: i64) -> usize {
    view.members(course)
        .filter(|m| m.role == CourseRole::Professor)
        .count()
}

fn summary(c: &Course, role: Option<CourseRole>) -> CourseSummary {
    CourseSummary {
        slug: c.slug.clone(),
        title: c.title.clone(),
        term: c.term.clone(),
        role,
    }
}

fn roster_msg(id: Option<u64>, view: &CatalogView, course: &Course) -> CourseMsg {
    let mut members: Vec<MemberInfo> = view
        .members(course.id)
        .map(|m| MemberInfo {
            username: m.username.clone(),
            role: m.role,
            added_at_ms: m.added_at_ms,
        })
        .collect();
    members.sort_by(|a, b| a.username.cmp(&b.username));
    CourseMsg::Roster {
        id,
        course: course.slug.clone(),
        members,
    }
}

fn file_msg(
    id: Option<u64>,
    course: String,
    student: Option<String>,
    path: String,
    (version, mime): (Option<String>, Option<String>),
    bytes: Vec<u8>,
) -> CourseMsg {
    let size = bytes.len() as u64;
    let (encoding, content) = files::encode_content(bytes);
    CourseMsg::CourseFile {
        id,
        course,
        student,
        path,
        version: version.unwrap_or_default(),
        size,
        mime: mime.unwrap_or_else(|| "application/octet-stream".into()),
        encoding,
        content,
    }
}

/// `wanted`, or the first of `stem (2).ext`, `stem (3).ext`, … for which
/// `exists` is false (up to 99).
pub fn free_name(wanted: &str, exists: impl Fn(&str) -> bool) -> Option<(String, bool)> {
    if !exists(wanted) {
        return Some((wanted.to_string(), false));
    }
    let (dir, name) = match wanted.rsplit_once('/') {
        Some((d, n)) => (format!("{d}/"), n),
        None => (String::new(), wanted),
    };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, format!(".{e}")),
        _ => (name, String::new()),
    };
    (2..=99)
        .map(|n| format!("{dir}{stem} ({n}){ext}"))
        .find(|c| !exists(c))
        .map(|c| (c, true))
}

/// Copy `from` of the course material into `dst` at `wanted` or a free name
/// next to it, never overwriting; on failure, what this copy created is
/// removed (to the trash). A folder of more than one listing page (1000
/// entries) is refused before anything is written.
fn copy_across(
    src: &Workspace,
    from: &str,
    dst: &Workspace,
    wanted: &str,
    shown: &dyn Fn(&str) -> bool,
) -> Result<(String, bool), AppError> {
    let fs = files::map_fs_error;
    let top = src.stat(from).map_err(fs)?;
    let (to, renamed) = free_name(wanted, |p| dst.stat(p).is_ok()).ok_or_else(|| {
        AppError::new(
            ErrorCode::Conflict,
            format!("{wanted} and its numbered variants exist already; choose another name"),
        )
    })?;
    let mut created = false;
    let result = (|| -> Result<(), AppError> {
        match top.kind {
            workspace_fs::EntryKind::File => {
                let (bytes, _) = src.read(&top.path).map_err(fs)?;
                dst.write(&to, &bytes, Precondition::CreateOnly)
                    .map_err(fs)?;
                created = true;
            }
            workspace_fs::EntryKind::Dir => {
                let page = src
                    .list_page(&top.path, true, None, MAX_LISTING)
                    .map_err(fs)?;
                if page.next_cursor.is_some() {
                    return Err(AppError::new(
                        ErrorCode::TooLarge,
                        format!(
                            "{from} has more than {MAX_LISTING} files and folders; copy its folders one by one"
                        ),
                    ));
                }
                // `mkdir` succeeds on an existing folder: a name taken since
                // `free_name` is refused, never merged into.
                if dst.stat(&to).is_ok() {
                    return Err(AppError::new(
                        ErrorCode::Conflict,
                        format!("{to} appeared meanwhile; nothing was copied"),
                    ));
                }
                dst.mkdir(&to).map_err(fs)?;
                created = true;
                // Entry paths are normalized (NFC): strip the normalized source path.
                for e in page.entries.iter().filter(|e| shown(&e.path)) {
                    let rel = e.path.strip_prefix(top.path.as_str()).unwrap_or(&e.path);
                    let target = format!("{to}{rel}");
                    match files::kind(e.kind) {
                        EntryKind::Dir => {
                            dst.mkdir(&target).map_err(fs)?;
                        }
                        EntryKind::File => {
                            let (bytes, _) = src.read(&e.path).map_err(fs)?;
                            dst.write(&target, &bytes, Precondition::CreateOnly)
                                .map_err(fs)?;
                        }
                        EntryKind::Symlink => {}
                    }
                }
            }
            workspace_fs::EntryKind::Symlink => {
                return Err(AppError::new(ErrorCode::InvalidPath, "cannot copy a link"));
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Half a folder is worse than none: it goes to the trash (only what
        // this copy created; a name taken meanwhile is someone else's).
        if created {
            let _ = dst.delete(&to);
        }
        return Err(e);
    }
    Ok((to, renamed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_names_keep_the_extension() {
        let taken = ["demo.py", "demo (2).py", "lab1", "a/b.txt", ".rc"];
        let exists = |p: &str| taken.contains(&p);
        assert_eq!(free_name("new.py", exists), Some(("new.py".into(), false)));
        assert_eq!(
            free_name("demo.py", exists),
            Some(("demo (3).py".into(), true))
        );
        assert_eq!(free_name("lab1", exists), Some(("lab1 (2)".into(), true)));
        assert_eq!(
            free_name("a/b.txt", exists),
            Some(("a/b (2).txt".into(), true))
        );
        assert_eq!(free_name(".rc", exists), Some((".rc (2)".into(), true)));
        assert_eq!(free_name("x", |_| true), None);
    }

    #[test]
    fn slugs() {
        for ok in ["cs101", "intro-py", "a", "2026-fall"] {
            assert!(valid_slug(ok), "{ok}");
        }
        for bad in ["", "-x", "CS101", "a b", "a/b", "a_b", &"x".repeat(33)] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
