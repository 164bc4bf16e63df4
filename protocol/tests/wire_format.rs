//! The JSON wire format, byte for byte: one line per message shape (every variant of
//! `ClientMsg` and `ServerMsg`, optional fields present and absent), as the server and
//! the clients serialize it. Each must parse and serialize back to exactly the same
//! bytes, and the lists of message types must be exactly these. Written against the
//! flat enums before the protocol was split into per-domain groups, and unchanged
//! since: the split did not change a byte on the wire (the courses group was
//! added later, its lines after the others).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use campus_protocol::{ClientMsg, ServerMsg};

/// Client messages as serialized (absent optional fields of client messages are `null`).
const CLIENT: &[&str] = &[
    r#"{"type":"ping","id":1}"#,
    r#"{"type":"ping","id":null}"#,
    r#"{"type":"list","id":2,"path":"src","recursive":true}"#,
    r#"{"type":"list","id":null,"path":"","recursive":false}"#,
    r#"{"type":"stat","id":3,"path":"main.py"}"#,
    r#"{"type":"read","id":4,"path":"main.py"}"#,
    r#"{"type":"write","id":5,"path":"main.py","content":"print(2)\n","encoding":"utf8","base_version":"1c9e"}"#,
    r#"{"type":"write","id":null,"path":"img.png","content":"iVBORw0=","encoding":"base64","base_version":null}"#,
    r#"{"type":"mkdir","id":6,"path":"data/raw"}"#,
    r#"{"type":"rename","id":7,"from":"old.py","to":"lib/new.py","overwrite":true}"#,
    r#"{"type":"copy","id":8,"from":"data","to":"data-backup"}"#,
    r#"{"type":"delete","id":9,"path":"data"}"#,
    r#"{"type":"list_versions","id":10,"path":"main.py"}"#,
    r#"{"type":"read_version","id":11,"path":"main.py","version":"1c9e"}"#,
    r#"{"type":"restore_version","id":12,"path":"main.py","version":"1c9e"}"#,
    r#"{"type":"trash_list","id":13}"#,
    r#"{"type":"trash_restore","id":14,"trash_id":"1795412346200-3f9a","to":"elsewhere"}"#,
    r#"{"type":"trash_restore","id":null,"trash_id":"t","to":null}"#,
    r#"{"type":"run","id":20,"path":"main.py","mode":"hybrid","cols":100,"rows":30}"#,
    r#"{"type":"run","id":null,"path":"","mode":"repl","cols":null,"rows":null}"#,
    r#"{"type":"run","id":23,"path":"week1/demo.py","mode":"script","cols":80,"rows":24,"course":"cs101"}"#,
    r#"{"type":"input","id":null,"data":"42\r"}"#,
    r#"{"type":"resize","id":3,"cols":120,"rows":40}"#,
    r#"{"type":"interrupt","id":null}"#,
    r#"{"type":"stop","id":21}"#,
    r#"{"type":"attach","id":22,"since_seq":18234}"#,
    r#"{"type":"attach","id":null,"since_seq":0}"#,
    r#"{"type":"ack","seq":19012}"#,
    r#"{"type":"course_list","id":30}"#,
    r#"{"type":"course_create","id":31,"slug":"cs101","title":"Intro to Programming","term":"2026 Fall"}"#,
    r#"{"type":"course_open","id":32,"course":"cs101"}"#,
    r#"{"type":"course_list_files","id":33,"course":"cs101","path":"week1"}"#,
    r#"{"type":"course_read","id":34,"course":"cs101","path":"week1/demo.py"}"#,
    r#"{"type":"course_write","id":35,"course":"cs101","path":"week1/demo.py","content":"print(1)\n","encoding":"utf8","base_version":null}"#,
    r#"{"type":"course_mkdir","id":36,"course":"cs101","path":"week1/data"}"#,
    r#"{"type":"course_delete","id":37,"course":"cs101","path":"week1/old.py"}"#,
    r#"{"type":"course_copy","id":38,"course":"cs101","path":"week1","to":"lab1"}"#,
    r#"{"type":"course_copy","id":null,"course":"cs101","path":"week1/demo.py","to":null}"#,
    r#"{"type":"section_save","id":39,"course":"cs101","section":null,"folder":"week1","title":"Week 1","kind":"notes","position":null,"published":false,"release_at_ms":null,"close_at_ms":null}"#,
    r#"{"type":"section_save","id":40,"course":"cs101","section":4,"folder":"test1","title":"Test 1","kind":"test","position":2,"published":true,"release_at_ms":1795600800000,"close_at_ms":1795608000000}"#,
    r#"{"type":"section_delete","id":41,"course":"cs101","section":4}"#,
    r#"{"type":"exception_set","id":42,"course":"cs101","section":4,"username":"ann","release_at_ms":null,"close_at_ms":1795694400000}"#,
    r#"{"type":"exception_remove","id":43,"course":"cs101","section":4,"username":"ann"}"#,
    r#"{"type":"release_set","id":44,"course":"cs101","path":"week3/test.py","published":true,"release_at_ms":1767258000000,"close_at_ms":null}"#,
    r#"{"type":"release_remove","id":45,"course":"cs101","path":"week3/test.py"}"#,
    r#"{"type":"roster_get","id":44,"course":"cs101"}"#,
    r#"{"type":"enroll","id":45,"course":"cs101","username":"ann","role":"ta"}"#,
    r#"{"type":"enroll","id":null,"course":"cs101","username":"bob","role":null}"#,
    r#"{"type":"unenroll","id":46,"course":"cs101","username":"bob"}"#,
    r#"{"type":"roster_import","id":47,"course":"cs101","csv":"username,role\nann\nbob,ta\n","create_accounts":true}"#,
    r#"{"type":"student_list_files","id":48,"course":"cs101","student":"ann","path":""}"#,
    r#"{"type":"student_read","id":49,"course":"cs101","student":"ann","path":"main.py"}"#,
    r#"{"type":"student_versions","id":50,"course":"cs101","student":"ann","path":"main.py"}"#,
    r#"{"type":"student_read_version","id":52,"course":"cs101","student":"ann","path":"main.py","version":"1c9e"}"#,
    r#"{"type":"student_runs","id":51,"course":"cs101","student":"ann"}"#,
    r#"{"type":"assignment_get","id":60,"course":"cs101","folder":"hw1"}"#,
    r#"{"type":"assignment_save","id":61,"course":"cs101","folder":"hw1","config":{"due_at_ms":1795412345678,"late_policy":"accept","late_penalty_percent":20.0,"max_attempts":3,"test_timeout_ms":5000,"memory_mib":128,"default_points":1.0,"tests":[{"name":"test_add","points":2.0,"visibility":"visible","secret_name":false},{"name":"test_edge","points":3.0,"visibility":"hidden","secret_name":true}]}}"#,
    r#"{"type":"test_file_put","id":62,"course":"cs101","folder":"hw1","name":"test_basic.py","content":"from solution import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"}"#,
    r#"{"type":"test_file_delete","id":63,"course":"cs101","folder":"hw1","name":"test_basic.py"}"#,
    r#"{"type":"test_file_get","id":64,"course":"cs101","folder":"hw1","name":"test_basic.py"}"#,
    r#"{"type":"check","id":65,"course":"cs101","folder":"hw1"}"#,
    r#"{"type":"submit","id":66,"course":"cs101","folder":"hw1"}"#,
    r#"{"type":"submission_get","id":67,"submission":42}"#,
    r#"{"type":"gradebook_get","id":68,"course":"cs101","folder":"hw1"}"#,
    r#"{"type":"regrade","id":69,"course":"cs101","folder":"hw1"}"#,
    r#"{"type":"progress_get","id":70,"course":"cs101"}"#,
    r#"{"type":"admin_watch","id":80}"#,
    r#"{"type":"admin_unwatch","id":81}"#,
    r#"{"type":"admin_stop_run","id":82,"user_id":12,"run_id":"5d3c"}"#,
    r#"{"type":"admin_disconnect","id":83,"user_id":12}"#,
    r#"{"type":"admin_accounts","id":85}"#,
    r#"{"type":"admin_set_disabled","id":84,"user_id":12,"disabled":true}"#,
];

/// Server messages as serialized (absent optional fields are left out).
const SERVER: &[&str] = &[
    r#"{"type":"hello","protocol":1,"connection_id":"3fa1c2d4e5f6","user":{"id":12,"username":"ann","role":"student"},"limits":{"ws_messages_per_min":300,"file_ops_per_min":100,"runs_per_min":10,"max_file_bytes":10485760,"workspace_quota_bytes":157286400,"workspace_max_entries":5000,"max_ws_message_bytes":1048576,"run_memory_bytes":134217728,"run_cpu_secs":30,"script_max_age_secs":1800,"repl_max_age_secs":3600}}"#,
    r#"{"type":"pong","id":1}"#,
    r#"{"type":"pong"}"#,
    r#"{"type":"error","id":7,"code":"rate_limited","message":"too many file operations; try again in 12 s","retry_after_ms":11450}"#,
    r#"{"type":"error","id":8,"code":"conflict","message":"changed","current_version":"9f2c1a7e5b3d4c60"}"#,
    r#"{"type":"error","code":"internal","message":"something went wrong","request_id":"4b1e"}"#,
    r#"{"type":"listing","id":2,"path":"","entries":[{"path":"data","kind":"dir","size":0,"mtime_ms":1795412345000},{"path":"main.py","kind":"file","size":9,"mtime_ms":1795412345678,"version":"1c9e","mime":"text/x-python"},{"path":"l","kind":"symlink","size":4,"mtime_ms":1}]}"#,
    r#"{"type":"entry","id":3,"entry":{"path":"main.py","kind":"file","size":9,"mtime_ms":1795412345678,"version":"1c9e","mime":"text/x-python"}}"#,
    r#"{"type":"file","id":4,"path":"main.py","version":"1c9e","size":9,"mime":"text/x-python","encoding":"utf8","content":"print(1)\n"}"#,
    r#"{"type":"file","path":"a.bin","version":"v","size":2,"mime":"application/octet-stream","encoding":"base64","content":"AAE="}"#,
    r#"{"type":"written","id":5,"path":"main.py","version":"77ad","size":9,"created":false}"#,
    r#"{"type":"deleted","id":9,"path":"data","trash_id":"1795412346200-3f9a"}"#,
    r#"{"type":"versions","id":10,"path":"main.py","versions":[{"version":"1c9e","size":9,"saved_at_ms":1795412345900}]}"#,
    r#"{"type":"trash","id":13,"items":[{"trash_id":"1795412346200-3f9a","original_path":"data","kind":"dir","size":1834,"deleted_at_ms":1795412346200,"expires_at_ms":1796017146200}]}"#,
    r#"{"type":"file_changed","path":"main.py","kind":"written","version":"77ad","by_connection":"3fa1c2d4e5f6"}"#,
    r#"{"type":"file_changed","path":"lib/new.py","kind":"renamed","version":"a1b2","from":"old.py","by_connection":"http"}"#,
    r#"{"type":"file_changed","path":"d","kind":"deleted","by_connection":"c"}"#,
    r#"{"type":"run_started","id":20,"run_id":"5d3c","path":"main.py","mode":"hybrid","start_seq":18234,"replaced_previous":false}"#,
    r#"{"type":"run_started","run_id":"5d3c","path":"","mode":"repl","start_seq":0,"replaced_previous":true}"#,
    r#"{"type":"phase","run_id":"5d3c","phase":"repl"}"#,
    r#"{"type":"phase","run_id":"5d3c","phase":"repl","script_error":"ZeroDivisionError"}"#,
    r#"{"type":"warning","run_id":"5d3c","reason":"max_age","message":"This run will be stopped in 2 min.","stop_in_ms":120000}"#,
    r#"{"type":"run_ended","run_id":"5d3c","reason":"memory_limit","signal":9,"cpu_ms":412,"cpu_limit_ms":30000,"peak_memory_bytes":134217728,"memory_limit_bytes":134217728,"duration_ms":655,"output_bytes":120,"message":"Stopped."}"#,
    r#"{"type":"run_ended","id":21,"run_id":"r","reason":"exited","exit_code":0,"cpu_ms":1,"cpu_limit_ms":30000,"peak_memory_bytes":0,"memory_limit_bytes":134217728,"duration_ms":5,"output_bytes":0,"message":"Finished with exit code 0 in 0.0 s"}"#,
    r#"{"type":"attached","id":22,"run_id":"5d3c","running":true,"mode":"hybrid","path":"main.py","phase":"repl","script_error":"ZeroDivisionError","replay_from":18234,"next_seq":19012,"dropped_bytes":0}"#,
    r#"{"type":"attached","running":false,"replay_from":0,"next_seq":0,"dropped_bytes":0}"#,
    r#"{"type":"attached","run_id":"r","running":false,"replay_from":0,"next_seq":10,"dropped_bytes":3,"last_ended":{"run_id":"r","reason":"stopped","cpu_ms":1,"cpu_limit_ms":30000,"peak_memory_bytes":0,"memory_limit_bytes":134217728,"duration_ms":5,"output_bytes":0,"message":"Stopped"}}"#,
    r#"{"type":"shutdown","message":"The server is restarting.","reconnect_after_ms":2000}"#,
    r#"{"type":"courses","id":30,"courses":[{"slug":"cs101","title":"Intro to Programming","term":"2026 Fall","role":"student"},{"slug":"ma201","title":"Linear Algebra","term":""}]}"#,
    r#"{"type":"course","id":32,"course":{"slug":"cs101","title":"Intro to Programming","term":"2026 Fall","role":"professor","can":["edit","drafts","students"],"sections":[{"id":4,"folder":"test1","title":"Test 1","kind":"test","position":2,"published":true,"release_at_ms":1795600800000,"close_at_ms":1795608000000,"state":"scheduled","exceptions":[{"username":"ann","close_at_ms":1795694400000}],"releases":[{"path":"test1/answers.py","published":false,"release_at_ms":1795600800000,"close_at_ms":1795608000000,"state":"draft"}]},{"id":5,"folder":"week1","title":"Week 1","kind":"notes","position":3,"published":false,"state":"draft"}],"now_ms":1795412345678}}"#,
    r#"{"type":"course_listing","id":33,"course":"cs101","path":"week1","entries":[{"path":"week1/demo.py","kind":"file","size":9,"mtime_ms":1795412345678,"version":"1c9e","mime":"text/x-python"}]}"#,
    r#"{"type":"course_listing","id":48,"course":"cs101","student":"ann","path":"","entries":[]}"#,
    r#"{"type":"course_file","id":34,"course":"cs101","path":"week1/demo.py","version":"1c9e","size":9,"mime":"text/x-python","encoding":"utf8","content":"print(1)\n"}"#,
    r#"{"type":"course_file","id":49,"course":"cs101","student":"ann","path":"main.py","version":"77ad","size":9,"mime":"text/x-python","encoding":"utf8","content":"print(2)\n"}"#,
    r#"{"type":"course_written","id":35,"course":"cs101","path":"week1/demo.py","version":"77ad"}"#,
    r#"{"type":"course_written","id":37,"course":"cs101","path":"week1/old.py"}"#,
    r#"{"type":"course_copied","id":38,"course":"cs101","from":"week1","to":"lab1 (2)","renamed":true}"#,
    r#"{"type":"roster","id":44,"course":"cs101","members":[{"username":"ann","role":"student","added_at_ms":1795412345678},{"username":"prof","role":"professor","added_at_ms":1795412300000}]}"#,
    r#"{"type":"roster_result","id":47,"course":"cs101","applied":false,"lines":[{"line":2,"username":"ann","role":"student","outcome":"enroll"},{"line":3,"username":"bo b","outcome":"invalid","error":"a username is 1-64 of a-z A-Z 0-9 . _ -"}],"accounts":[]}"#,
    r#"{"type":"roster_result","id":47,"course":"cs101","applied":true,"lines":[{"line":1,"username":"cy","role":"student","outcome":"create_account"}],"accounts":[{"username":"cy","password":"tulip-anchor-3921"}]}"#,
    r#"{"type":"student_versions","id":50,"course":"cs101","student":"ann","path":"main.py","versions":[{"version":"1c9e","size":9,"saved_at_ms":1795412345900}]}"#,
    r#"{"type":"student_runs","id":51,"course":"cs101","student":"ann","runs":[{"run_id":"5d3c","path":"main.py","mode":"hybrid","started_at_ms":1795412345000,"ended_at_ms":1795412346000,"reason":"exited","exit_code":0},{"run_id":"6e4d","path":"x.py","mode":"script","started_at_ms":1795412347000}]}"#,
    r#"{"type":"course_changed","course":"cs101"}"#,
    r#"{"type":"assignment","id":60,"assignment":{"course":"cs101","folder":"hw1","title":"Homework 1","config":{"due_at_ms":1795412345678,"late_policy":"refuse","late_penalty_percent":0.0,"test_timeout_ms":10000,"memory_mib":128,"default_points":1.0,"tests":[]},"max_score":5.0,"submissions":[{"id":42,"course":"cs101","folder":"hw1","attempt":1,"created_at_ms":1795412300000,"files_hash":"9f86d081884c7d65","late":false,"state":"graded","score":3.0,"max_score":5.0}],"best_score":3.0,"attempts_used":1,"now_ms":1795412340000}}"#,
    r#"{"type":"test_file","id":64,"name":"test_basic.py","content":"def test_x():\n    assert True\n"}"#,
    r#"{"type":"submission","id":66,"submission":{"id":42,"course":"cs101","folder":"hw1","attempt":1,"created_at_ms":1795412300000,"files_hash":"9f86d081884c7d65","files":["solution.py"],"late":false,"state":"queued","position":3}}"#,
    r#"{"type":"submission","submission":{"id":42,"course":"cs101","folder":"hw1","student":"ann","attempt":1,"created_at_ms":1795412300000,"files_hash":"9f86d081884c7d65","late":true,"state":"graded","score":2.4,"max_score":5.0,"tests":[{"name":"test_basic.py::test_add","outcome":"passed","points":2.0,"max_points":2.0,"visibility":"visible","duration_ms":4},{"name":"Hidden test 1","outcome":"failed","points":0.0,"max_points":3.0,"visibility":"hidden","duration_ms":0}],"output":"hello\n","message":"the grader stopped before every test ran"}}"#,
    r#"{"type":"check_started","id":65,"course":"cs101","folder":"hw1"}"#,
    r#"{"type":"test_progress","check":65,"course":"cs101","folder":"hw1","name":"test_basic.py::test_add"}"#,
    r#"{"type":"test_progress","submission":42,"course":"cs101","folder":"hw1","name":"test_basic.py::test_add","result":{"name":"test_basic.py::test_add","outcome":"failed","points":0.0,"max_points":2.0,"visibility":"visible","message":"assert add(2, 3) == 5","duration_ms":3}}"#,
    r#"{"type":"check_done","check":65,"course":"cs101","folder":"hw1","tests":[],"message":"the check could not run","output":"","score":0.0,"max_score":0.0}"#,
    r#"{"type":"gradebook","id":68,"course":"cs101","folder":"hw1","max_score":5.0,"lines":[{"student":"ann","best":5.0,"attempts":2,"last_submission":43,"last_at_ms":1795412345000,"late":false},{"student":"bob","attempts":0,"late":false}],"distribution":[0,0,0,0,0,0,0,0,0,1],"tests":[{"name":"test_basic.py::test_add","runs":2,"passed":1}]}"#,
    r#"{"type":"regraded","id":69,"queued":12}"#,
    r#"{"type":"progress","id":70,"course":"cs101","title":"Intro to Programming","assignments":[{"folder":"hw1","title":"Homework 1","due_at_ms":1796342400000,"max_score":10.0,"best_score":8.0,"attempts_used":2,"max_attempts":5,"last_state":"graded","last_submission":41,"last_at_ms":1796300000000,"late":false},{"folder":"hw2","title":"Homework 2","max_score":4.0,"attempts_used":0,"late":false}],"total_best":8.0,"total_max":14.0}"#,
    r#"{"type":"admin_feed","at_ms":1796412970948,"sessions":[{"user_id":12,"username":"ann","state":"script","running":true,"run_id":"5d3c","path":"hold.py","mode":"script","run_age_ms":4200,"cpu_percent":97.0,"cpu_ms":3900,"memory_bytes":68157440,"peak_memory_bytes":68374528,"idle_ms":0,"detached_ms":0,"output_bytes":8,"attached":1,"clients":2},{"user_id":13,"username":"bob","state":"idle","running":false,"run_age_ms":0,"cpu_percent":0.0,"cpu_ms":0,"memory_bytes":0,"peak_memory_bytes":0,"idle_ms":65000,"detached_ms":0,"output_bytes":0,"attached":1,"clients":1}],"truncated":false,"totals":{"connections":3,"sessions":2,"by_state":{"idle":1,"script":1,"repl":0,"detached":0},"sandboxes_running":1,"sandbox_slots":32,"sandbox_waiting":0,"memory_limit_bytes":134217728,"runs_per_min":4,"ended_per_min":{"exited":2,"killed_by_admin":1},"refusals_per_min":{"connection_refused":3,"rate_limited":5},"grading_queue":2,"grading_oldest_ms":1500,"disk_free_bytes":53687091200,"disk_total_bytes":107374182400,"database_up":true},"history":[{"at_ms":1796412910948,"sessions":2,"sandboxes_running":0,"runs_per_min":1},{"at_ms":1796412970948,"sessions":2,"sandboxes_running":1,"runs_per_min":4}]}"#,
    r#"{"type":"admin_accounts","id":85,"accounts":[{"user_id":1,"username":"admin","role":"admin","disabled":false,"created_at_ms":1796400000000},{"user_id":12,"username":"ann","role":"student","disabled":true,"created_at_ms":1796400100000}]}"#,
    r#"{"type":"admin_done","id":82,"action":"admin_stop_run","user_id":12,"changed":true,"message":"Stopped ann's run."}"#,
    r#"{"type":"admin_done","id":80,"action":"admin_watch","changed":true,"message":"Watching every session; the feed updates every second."}"#,
];

/// The `type` of a JSON line.
fn tag(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["type"].as_str().unwrap().to_string()
}

/// The types named by an "unknown variant" error, in its order.
fn expected_types(err: &str) -> Vec<String> {
    let list = err.split("expected one of ").nth(1).unwrap();
    let list = list.split(" at line").next().unwrap();
    list.split(", ")
        .map(|t| t.trim_matches('`').to_string())
        .collect()
}

#[test]
fn client_messages_round_trip_byte_for_byte() {
    for line in CLIENT {
        let msg: ClientMsg = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(serde_json::to_string(&msg).unwrap(), *line);
        assert!(
            serde_json::from_str::<ServerMsg>(line).is_err() || tag(line) == "ping",
            "{line}"
        );
    }
}

#[test]
fn server_messages_round_trip_byte_for_byte() {
    for line in SERVER {
        let msg: ServerMsg = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(serde_json::to_string(&msg).unwrap(), *line);
        // Also through serde_json::Value, as clients that inspect messages first do.
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let again: ServerMsg = serde_json::from_value(value).unwrap();
        assert_eq!(again, msg);
    }
}

#[test]
fn every_message_type_is_covered_and_no_other_exists() {
    let unknown = serde_json::from_str::<ClientMsg>(r#"{"type":"nope","id":1}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(
        unknown,
        r#"unknown variant `nope`, expected one of `ping`, `list`, `stat`, `read`, `write`, `mkdir`, `rename`, `copy`, `delete`, `list_versions`, `read_version`, `restore_version`, `trash_list`, `trash_restore`, `run`, `input`, `resize`, `interrupt`, `stop`, `attach`, `ack`, `course_list`, `course_create`, `course_open`, `course_list_files`, `course_read`, `course_write`, `course_mkdir`, `course_delete`, `course_copy`, `section_save`, `section_delete`, `exception_set`, `exception_remove`, `release_set`, `release_remove`, `roster_get`, `enroll`, `unenroll`, `roster_import`, `student_list_files`, `student_read`, `student_versions`, `student_read_version`, `student_runs`, `assignment_get`, `assignment_save`, `test_file_put`, `test_file_delete`, `test_file_get`, `check`, `submit`, `submission_get`, `gradebook_get`, `regrade`, `progress_get`, `admin_watch`, `admin_unwatch`, `admin_stop_run`, `admin_disconnect`, `admin_accounts`, `admin_set_disabled` at line 1 column 14"#
    );
    let client: BTreeSet<String> = CLIENT.iter().map(|l| tag(l)).collect();
    let declared = expected_types(&unknown);
    assert_eq!(client, declared.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(declared.len(), client.len(), "a type is listed twice");

    let unknown = serde_json::from_str::<ServerMsg>(r#"{"type":"nope","id":1}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(
        unknown,
        r#"unknown variant `nope`, expected one of `hello`, `pong`, `error`, `listing`, `entry`, `file`, `written`, `deleted`, `versions`, `trash`, `file_changed`, `run_started`, `phase`, `warning`, `run_ended`, `attached`, `shutdown`, `courses`, `course`, `course_listing`, `course_file`, `course_written`, `course_copied`, `roster`, `roster_result`, `student_versions`, `student_runs`, `course_changed`, `assignment`, `test_file`, `submission`, `check_started`, `test_progress`, `check_done`, `gradebook`, `regraded`, `progress`, `admin_feed`, `admin_accounts`, `admin_done` at line 1 column 14"#
    );
    let server: BTreeSet<String> = SERVER.iter().map(|l| tag(l)).collect();
    let declared = expected_types(&unknown);
    assert_eq!(server, declared.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(declared.len(), server.len(), "a type is listed twice");
}

#[test]
fn malformed_messages_are_refused_with_the_same_words() {
    let err = |json: &str| {
        serde_json::from_str::<ClientMsg>(json)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(r#"{"id":1}"#),
        r#"missing field `type` at line 1 column 8"#
    );
    assert_eq!(err(r#"{"type":"write","id":1}"#), r#"missing field `path`"#);
    assert_eq!(
        err(r#"{"type":"run","id":1,"mode":"fast"}"#),
        r#"unknown variant `fast`, expected one of `script`, `hybrid`, `repl`"#
    );
    assert_eq!(
        err(r#"{"type":"ack","seq":-1}"#),
        r#"invalid value: integer `-1`, expected u64"#
    );
    assert!(serde_json::from_str::<ClientMsg>(r#"[1]"#).is_err());
    assert!(serde_json::from_str::<ClientMsg>(r#""ping""#).is_err());
}

/// Every message example in docs/protocol.md is one the types accept; the server's
/// serialize back to the same JSON.
#[test]
fn the_documented_examples_parse() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md"))
        .unwrap();
    let mut seen = 0;
    for block in doc.split("```json").skip(1) {
        let block = block.split("```").next().unwrap();
        // Other JSON blocks (`/readyz` with elisions) are not messages.
        if !block.trim_start().starts_with(r#"{"type""#) {
            continue;
        }
        for value in serde_json::Deserializer::from_str(block).into_iter::<serde_json::Value>() {
            let value = value.unwrap_or_else(|e| panic!("docs/protocol.md: {e} in {block}"));
            let Some(t) = value.get("type").and_then(|t| t.as_str()) else {
                continue;
            };
            seen += 1;
            let as_server = serde_json::from_value::<ServerMsg>(value.clone());
            let as_client = serde_json::from_value::<ClientMsg>(value.clone());
            match (as_server, as_client) {
                (Ok(m), _) => assert_eq!(serde_json::to_value(&m).unwrap(), value, "{t}"),
                (_, Ok(_)) => {}
                (Err(a), Err(b)) => panic!("documented {t} parses as neither: {a} / {b}"),
            }
        }
    }
    assert!(seen >= 40, "only {seen} examples found");
}
