//! Runs: the programs students run, and the run state machine (answer the
//! `input()` prompt, type into the REPL keystroke by keystroke timing each
//! echo, leave with Ctrl-D; hogs that must end at their limit; the chatty
//! program a reattaching student disconnects from).

use std::sync::atomic::Ordering;
use std::time::Duration;

use campus_protocol::SessionRequest;
use campus_protocol::{ClientMsg, EndReason, RunEnded, RunMode};
use rand::Rng;
use tokio::time::Instant;

use super::{Op, Pending, Student, ECHO_TIMEOUT, KEY_EVERY};
pub(super) const ASK_PY: &str = "name = input(\"What is your name? \")\nprint(f\"Hello, {name}!\")\nscores = [3, 1, 4, 1, 5, 9, 2, 6]\n";
pub(super) const TICKER_PY: &str = "import time\nfor i in range(60):\n    print(f\"tick {i:02d} \" + \".\" * 60, flush=True)\n    time.sleep(0.05)\n";
pub(super) const CPU_PY: &str = "print(\"burning CPU\", flush=True)\nwhile True:\n    pass\n";
pub(super) const MEM_PY: &str = "print(\"allocating\", flush=True)\nchunks = []\nwhile True:\n    chunks.append(b\"x\" * (8 << 20))\n";
/// Files written when the student connects the first time.
pub(super) const SETUP_FILES: [(&str, &str); 4] = [
    ("ask.py", ASK_PY),
    ("ticker.py", TICKER_PY),
    ("hog_cpu.py", CPU_PY),
    ("hog_mem.py", MEM_PY),
];
/// What the student types into the REPL, one cycle's burst each (one line:
/// a longer burst keeps the program alive longer, and 300 students' live
/// programs must stay below the server's admission limit of 128 here).
pub(super) const BURSTS: [&[&str]; 6] = [
    &["x = 6 * 7"],
    &["print(x, name)"],
    &["total = sum(scores)"],
    &["total / len(scores)"],
    &["name.upper()"],
    &["sorted(scores)[-3:]"],
];

/// Which program a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunKind {
    Cycle,
    Ticker,
    Cpu,
    Mem,
}

/// Progress through a REPL burst.
pub(super) struct Typing {
    pub(super) lines: &'static [&'static str],
    pub(super) line: usize,
    pub(super) col: usize,
    /// The keystroke whose echo we wait for, and when it was sent.
    /// The keystroke whose echo we wait for, when it was sent, and whether a
    /// save was in flight meanwhile (diagnostic: head-of-line blocking).
    pub(super) echo: Option<(char, Instant, bool)>,
    pub(super) next_key: Instant,
    /// `\r` sent; waiting for the next prompt.
    pub(super) wait_prompt: bool,
    pub(super) done: bool,
}

/// The student's live run, as far as the student knows.
pub(super) struct Run {
    pub(super) kind: RunKind,
    pub(super) t0: Instant,
    pub(super) first_output: bool,
    /// Recent output as text (bounded), for prompts.
    pub(super) text: String,
    pub(super) answered: bool,
    pub(super) repl: bool,
    pub(super) typing: Option<Typing>,
    pub(super) deadline: Instant,
    pub(super) stopping: bool,
    /// Ticker: when to drop the connection.
    pub(super) drop_at: Option<Instant>,
}

impl Student {
    /// Classify how a run ended (intended for hogs, clean exit for the rest).
    pub(super) fn run_ended(&mut self, e: &RunEnded) {
        let Some(run) = self.run.as_ref() else { return };
        let (kind, stopping, first) = (run.kind, run.stopping, run.first_output);
        self.end_run_locally();
        let expected = match kind {
            RunKind::Cpu => EndReason::CpuLimit,
            RunKind::Mem => EndReason::MemoryLimit,
            RunKind::Cycle | RunKind::Ticker => EndReason::Exited,
        };
        if stopping {
            return; // already counted as run_stuck, or the test ended
        }
        if e.reason == expected && e.exit_code.unwrap_or(0) == 0 {
            if matches!(kind, RunKind::Cpu | RunKind::Mem) {
                self.rec.intended(Op::RunFirstOutput, e.reason.as_str());
            }
        } else if e.reason == EndReason::Exited {
            self.rec.error(
                Op::RunFirstOutput,
                &format!("exit_{}", e.exit_code.unwrap_or(-1)),
            );
        } else {
            self.rec
                .error(Op::RunFirstOutput, &format!("ended_{}", e.reason.as_str()));
        }
        if !first {
            self.rec.error(Op::RunFirstOutput, "no_output");
        }
    }

    /// Start a run of `kind` (the requesting connection is attached by the server).
    pub(super) async fn start_run(&mut self, kind: RunKind, now: Instant) {
        let (path, mode, limit) = match kind {
            RunKind::Cycle => ("ask.py", RunMode::Hybrid, 60),
            RunKind::Ticker => ("ticker.py", RunMode::Script, 30),
            RunKind::Cpu => ("hog_cpu.py", RunMode::Script, 180),
            RunKind::Mem => ("hog_mem.py", RunMode::Script, 60),
        };
        self.run = Some(Run {
            kind,
            t0: now,
            first_output: false,
            text: String::new(),
            answered: false,
            repl: false,
            typing: None,
            deadline: now + Duration::from_secs(limit),
            stopping: false,
            drop_at: None,
        });
        self.rec.runs_live.fetch_add(1, Ordering::Relaxed);
        self.request(Pending::Run, |id| {
            ClientMsg::Session(SessionRequest::Run {
                id: Some(id),
                path: path.into(),
                mode,
                cols: Some(100),
                rows: Some(30),
                course: None,
            })
        })
        .await;
    }

    /// Answer prompts and type, as the output so far allows.
    pub(super) async fn advance_run(&mut self, now: Instant) {
        let Some(run) = self.run.as_mut() else { return };
        if run.kind != RunKind::Cycle || run.stopping {
            return;
        }
        if !run.answered {
            if run.text.contains("name? ") {
                run.answered = true;
                run.text.clear();
                let data = format!("Student{}\r", self.spec.index);
                self.send(ClientMsg::Session(SessionRequest::Input { id: None, data }))
                    .await;
            }
            return;
        }
        if run.typing.is_none() {
            if run.repl && run.text.contains(">>> ") {
                run.text.clear();
                let lines = BURSTS[self.cycles % BURSTS.len()];
                self.cycles += 1;
                let think = self.rng.gen_range(300..800);
                if let Some(run) = self.run.as_mut() {
                    run.typing = Some(Typing {
                        lines,
                        line: 0,
                        col: 0,
                        echo: None,
                        next_key: now + Duration::from_millis(think),
                        wait_prompt: false,
                        done: false,
                    });
                }
            }
            return;
        }
        let key_gap = self.jitter(KEY_EVERY);
        let Some(run) = self.run.as_mut() else { return };
        let Some(ty) = run.typing.as_mut() else {
            return;
        };
        if ty.done {
            return;
        }
        if ty.wait_prompt {
            if !run.text.contains(">>> ") {
                return;
            }
            ty.wait_prompt = false;
            ty.line += 1;
            ty.col = 0;
            ty.next_key = now + key_gap * 2;
            if ty.line == ty.lines.len() {
                ty.done = true;
                // Ctrl-D: leave the REPL; the run ends with exit code 0.
                self.send(ClientMsg::Session(SessionRequest::Input {
                    id: None,
                    data: "\u{4}".into(),
                }))
                .await;
            }
            return;
        }
        if ty.echo.is_some() || now < ty.next_key {
            return;
        }
        let line = ty.lines[ty.line];
        match line[ty.col..].chars().next() {
            Some(ch) => {
                ty.col += ch.len_utf8();
                ty.echo = Some((ch, now, self.save_in_flight));
                ty.next_key = now + key_gap;
                self.send(ClientMsg::Session(SessionRequest::Input {
                    id: None,
                    data: ch.to_string(),
                }))
                .await;
            }
            None => {
                ty.wait_prompt = true;
                run.text.clear();
                self.send(ClientMsg::Session(SessionRequest::Input {
                    id: None,
                    data: "\r".into(),
                }))
                .await;
            }
        }
    }

    /// Run deadlines, echo timeouts, and the reattacher's disconnect.
    pub(super) async fn run_timers(&mut self, now: Instant) {
        let Some(run) = self.run.as_mut() else { return };
        // Not while a save is in flight: its reply (the new version) would be lost
        // and the next autosave would conflict with our own write.
        if run.drop_at.is_some_and(|t| now >= t) && !self.save_in_flight {
            // Lid closed: drop the connection while the program prints.
            run.drop_at = None;
            if let Some(c) = self.client.take() {
                c.close().await;
            }
            self.pending.clear();
            self.save_in_flight = false;
            self.reconnect_at = Some(now + Duration::from_millis(self.rng.gen_range(800..1600)));
            return;
        }
        if let Some(ty) = run.typing.as_mut() {
            if ty.echo.is_some_and(|(_, t, _)| now - t > ECHO_TIMEOUT) {
                ty.echo = None;
                self.rec.error(Op::Echo, "timeout");
            }
        }
        if now >= run.deadline {
            if run.stopping {
                self.end_run_locally();
            } else {
                run.stopping = true;
                run.deadline = now + Duration::from_secs(10);
                self.rec.error(Op::RunFirstOutput, "run_stuck");
                self.send(ClientMsg::Session(SessionRequest::Stop { id: None }))
                    .await;
            }
        }
    }
}
