//! The request loop: read one NDJSON request per line from stdin (bounded in length),
//! run it, write events and one final reply to stdout, flush, repeat. Garbage gets an
//! error reply, never a crash. NVML is loaded on the first request that needs it.

use crate::error::{AgentError, Result};
use crate::nvml::Session;
use crate::ops;
use migfleet_proto::{
    self as proto, Body, DEFAULT_NVML_LIB, ENV_NVML_LIB, ErrorKind, Event, MAX_LINE_BYTES, Op,
    Reply, Request, Response,
};
use std::io::{self, BufRead, Write};
use std::time::Duration;

pub struct Agent {
    session: Option<Session>,
    /// The host's lock, once taken: held until the agent exits.
    lock: Option<ops::lock::HostLock>,
}

enum Line {
    Text(String),
    TooLong,
    NotUtf8,
}

/// Reads one line of at most `max` bytes; a longer one is consumed and reported.
fn read_line(input: &mut impl BufRead, max: usize) -> io::Result<Option<Line>> {
    let mut buf = Vec::new();
    let mut too_long = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            if buf.is_empty() && !too_long {
                return Ok(None);
            }
            break;
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            buf.extend_from_slice(&chunk[..take]);
            if buf.len() > max + 1 {
                too_long = true;
                buf.clear();
            }
        }
        input.consume(take);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Some(Line::TooLong));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(match String::from_utf8(buf) {
        Ok(s) => Line::Text(s),
        Err(_) => Line::NotUtf8,
    }))
}

impl Agent {
    pub fn new() -> Agent {
        Agent {
            session: None,
            lock: None,
        }
    }

    /// Serves requests until stdin closes.
    pub fn serve(&mut self, mut input: impl BufRead, mut out: impl Write) -> io::Result<()> {
        while let Some(line) = read_line(&mut input, MAX_LINE_BYTES)? {
            let text = match line {
                Line::Text(t) if t.trim().is_empty() => continue,
                Line::Text(t) => t,
                Line::TooLong => {
                    bad(
                        &mut out,
                        None,
                        format!("request line longer than {MAX_LINE_BYTES} bytes"),
                    )?;
                    continue;
                }
                Line::NotUtf8 => {
                    bad(&mut out, None, "request line is not UTF-8".to_string())?;
                    continue;
                }
            };
            let req = match proto::decode_request(&text) {
                Ok(r) => r,
                Err((id, message)) => {
                    bad(&mut out, id, message)?;
                    continue;
                }
            };
            let id = req.id;
            let result = {
                let mut emit = |e: Event| {
                    // Events go out as they happen; a broken pipe shows up on the reply.
                    let _ = write_line(
                        &mut out,
                        &Response {
                            id: Some(id),
                            body: Body::Event(e),
                        },
                    );
                };
                self.handle(&req, &mut emit)
            };
            let body = match result {
                Ok(reply) => Body::Ok(reply),
                Err(e) => Body::Err(e.into_reply()),
            };
            let reboot = matches!((&req.op, &body), (Op::Reboot { .. }, Body::Ok(_)));
            write_line(&mut out, &Response { id: Some(id), body })?;
            if reboot && let Op::Reboot { command } = &req.op {
                // The reply is out; start the reboot now. A failure to start it can only
                // be logged: the controller notices when the boot id does not change.
                if let Err(e) = ops::host::reboot(command.as_deref()) {
                    eprintln!("migfleet-agent: {}", e.message);
                }
            }
        }
        Ok(())
    }

    fn session(&mut self, lib: Option<&str>) -> Result<&Session> {
        let wanted = lib
            .map(String::from)
            .or_else(|| std::env::var(ENV_NVML_LIB).ok())
            .unwrap_or_else(|| DEFAULT_NVML_LIB.to_string());
        if self.session.as_ref().is_none_or(|s| s.path != wanted) {
            self.session = None;
            self.session = Some(Session::load(&wanted)?);
        }
        self.session
            .as_ref()
            .ok_or_else(|| AgentError::nvml("NVML session lost"))
    }

    fn handle(&mut self, req: &Request, emit: &mut dyn FnMut(Event)) -> Result<Reply> {
        let lib = req.nvml_lib.as_deref();
        if req.op.changes_host() && self.lock.is_none() {
            // A session that did not lock the host still never interleaves with one that did.
            let (lock, _) = ops::lock::take(
                &ops::host::state_dir(),
                "a migfleet agent session that did not ask for the lock",
                Duration::ZERO,
                emit,
            )?;
            self.lock = Some(lock);
        }
        match &req.op {
            Op::Lock { holder, wait_s } => {
                if self.lock.is_some() {
                    return Ok(Reply::Lock { waited_ms: 0 });
                }
                let holder: String = holder.chars().take(300).collect();
                let (lock, waited) = ops::lock::take(
                    &ops::host::state_dir(),
                    &holder,
                    Duration::from_secs(*wait_s),
                    emit,
                )?;
                self.lock = Some(lock);
                Ok(Reply::Lock {
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                })
            }
            Op::Hello => Ok(Reply::Hello(ops::hello::hello())),
            Op::Facts => Ok(Reply::Facts(ops::facts::facts(self.session(lib)?)?)),
            Op::SetMigMode {
                gpus,
                enabled,
                on_busy,
            } => Ok(Reply::SetMigMode {
                gpus: ops::mode::set_mig_mode(self.session(lib)?, gpus, *enabled, *on_busy)?,
            }),
            Op::ResetGpus { gpus, command } => {
                let bus_ids = ops::mode::bus_ids(self.session(lib)?, gpus)?;
                let argv = ops::mode::reset_argv(command.as_deref(), &bus_ids);
                emit(Event::Progress {
                    message: format!("resetting {}", bus_ids.join(", ")),
                });
                // NVML clients can hold the GPU: let go of ours for the reset.
                self.session = None;
                ops::run(&argv)?;
                Ok(Reply::ResetGpus {
                    gpus: ops::mode::modes(self.session(lib)?, gpus)?,
                })
            }
            Op::Apply {
                gpus,
                dry_run,
                allow_destroy_in_use,
                on_busy,
                assume,
            } => {
                let opts = ops::apply::Options {
                    dry_run: *dry_run,
                    allow_destroy_in_use: *allow_destroy_in_use,
                    on_busy: *on_busy,
                    assume,
                };
                Ok(Reply::Apply {
                    gpus: ops::apply::apply(self.session(lib)?, gpus, &opts, emit)?,
                })
            }
            Op::Drain {
                units,
                gpus,
                timeout_s,
                signal,
                systemctl,
            } => Ok(Reply::Drain(ops::host::drain(
                self.session(lib)?,
                units,
                gpus,
                Duration::from_secs(*timeout_s),
                signal.as_deref(),
                systemctl.as_deref(),
                emit,
            )?)),
            Op::Restore { systemctl } => Ok(Reply::Restore {
                started: ops::host::restore(systemctl.as_deref())?,
            }),
            Op::Persist { target, systemctl } => {
                let ctl = ops::host::systemctl_prefix(systemctl.as_deref());
                let (changed, files) = ops::persist::persist(target.as_ref(), &ctl)?;
                Ok(Reply::Persist { changed, files })
            }
            Op::Reboot { .. } => Ok(Reply::Reboot {
                boot_id: ops::hello::boot_id(),
            }),
        }
    }
}

fn bad(out: &mut impl Write, id: Option<u64>, message: String) -> io::Result<()> {
    write_line(
        out,
        &Response {
            id,
            body: Body::Err(AgentError::new(ErrorKind::BadRequest, message).into_reply()),
        },
    )
}

fn write_line(out: &mut impl Write, r: &Response) -> io::Result<()> {
    let mut line = proto::encode(r);
    line.push('\n');
    out.write_all(line.as_bytes())?;
    out.flush()
}
