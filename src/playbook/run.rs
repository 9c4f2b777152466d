//! A playbook run over the fleet, as Ansible's linear strategy runs it: plays in order;
//! each play's hosts in `serial` batches; within a batch every host finishes a task before
//! any starts the next (at most `forks` at once), and the task's results are reported in
//! host order. A host that fails or becomes unreachable takes no further part, in this
//! play or later ones; a batch in which every host failed, or more than
//! `max_fail_percentage` did, stops the run. Each host keeps one session and one Lua
//! state for the whole run ([`HostRun`]).

use std::collections::HashMap;
use std::sync::Arc;

use super::host::{Down, HostRun, RunWorld};
use super::modules::Module;
use super::play::{Action, Play};
use crate::fleet::executor::{self, batch_sizes, budget_spent};
use crate::fleet::{Event, Fleet, Status};
use crate::report::recap::HostStats;

/// What to run: the plays (as the controller loaded them, for names, patterns, batches
/// and task lists) and each play's hosts, chosen before anything connects.
pub struct Plan<'a> {
    pub plays: &'a [Play],
    pub hosts: Vec<Vec<String>>,
    /// Tasks each play runs (after `--tags` / `--skip-tags`), by index.
    pub tasks: Vec<Vec<usize>>,
}

/// How the run ended for each host that took part, in the order hosts first appeared.
pub struct Finished {
    pub hosts: Vec<(String, HostStats)>,
    /// Hosts a Ctrl-C stopped, with the task they would have run next.
    pub interrupted: Vec<(String, String)>,
}

/// Runs the plan. `world.events` gets everything that happens.
pub async fn run(fleet: &Fleet, plan: Plan<'_>, world: Arc<RunWorld>) -> Finished {
    let mut runs: HashMap<String, HostRun> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let events = world.events.clone();
    let mut interrupted: HashMap<String, String> = HashMap::new();
    'plays: for (pi, play) in plan.plays.iter().enumerate() {
        if world.interrupted() {
            for (h, r) in &runs {
                if r.down.is_none() && plan.hosts[pi].contains(h) {
                    interrupted
                        .entry(h.clone())
                        .or_insert_with(|| format!("play {}", play.name));
                }
            }
            break;
        }
        let hosts: Vec<String> = plan.hosts[pi]
            .iter()
            .filter(|h| runs.get(*h).is_none_or(|r| r.down.is_none()))
            .cloned()
            .collect();
        events.send(Event::PlayStart {
            play: pi + 1,
            name: play.name.clone(),
            pattern: play.hosts.clone(),
            hosts: hosts.clone(),
            check: world.check,
        });
        let sizes = batch_sizes(hosts.len(), &play.serial);
        let mut offset = 0;
        for (bi, size) in sizes.iter().copied().enumerate() {
            if size == 0 {
                continue;
            }
            if world.interrupted() {
                break 'plays;
            }
            let batch: Vec<String> = hosts[offset..offset + size].to_vec();
            offset += size;
            if sizes.len() > 1 {
                events.send(Event::Batch {
                    index: bi,
                    hosts: batch.clone(),
                });
            }
            // A host joins the run (and the recap) with its first batch.
            for h in &batch {
                if !runs.contains_key(h)
                    && let Some(conn) = fleet.connection(h)
                {
                    runs.insert(
                        h.clone(),
                        HostRun::new(h, Arc::new(conn.clone()), Arc::new(fleet.vars(h))),
                    );
                    order.push(h.clone());
                }
            }
            // Connect and load where this is the host's first play.
            let started = step(
                &mut runs,
                &batch,
                fleet.forks,
                &world,
                |mut h, w| async move {
                    let r = h.start(&w).await;
                    (h, r)
                },
            )
            .await;
            for (name, r) in started {
                if let Err(d) = r {
                    events.send(Event::HostDown {
                        host: name,
                        status: d.status,
                        message: d.message,
                        hints: d.hints,
                    });
                }
            }
            let mut stopped = false;
            for &ti in &plan.tasks[pi] {
                let active: Vec<String> = batch
                    .iter()
                    .filter(|h| runs.get(*h).is_some_and(|r| r.down.is_none()))
                    .cloned()
                    .collect();
                if active.is_empty() {
                    break;
                }
                let task = &play.tasks[ti];
                if world.interrupted() {
                    for h in active {
                        interrupted.insert(h, task.name.clone());
                    }
                    break 'plays;
                }
                events.send(Event::TaskStart {
                    play: pi + 1,
                    task: ti + 1,
                    name: task.name.clone(),
                    pos: task.pos.to_string(),
                    hosts: active.len(),
                });
                if let Action::Module(Module::K8sDemand(d)) = &task.action {
                    plan_demand(&mut runs, &active, d, fleet, &world).await;
                }
                let results = step(
                    &mut runs,
                    &active,
                    fleet.forks,
                    &world,
                    move |mut h, w| async move {
                        let r = h.run_task(&w, pi, ti).await;
                        (h, r)
                    },
                )
                .await;
                let mut just_failed = Vec::new();
                let mut just_down = Vec::new();
                let restores_later = restore_after(&plan, pi, ti).is_some();
                for (host, mut result) in results {
                    if result.status.is_failure() {
                        just_down.push(host.clone());
                    }
                    if result.status == Status::Failed {
                        just_failed.push(host.clone());
                        if !restores_later && runs.get(&host).is_some_and(|r| r.drained) {
                            result = result.hint(
                                "this host is left drained: the play has no restore{} after this task, so the units drain stopped stay stopped (the agent records them) until a restore{} runs on it",
                            );
                        }
                    }
                    events.send(Event::TaskResult {
                        host,
                        play: pi + 1,
                        task: ti + 1,
                        name: task.name.clone(),
                        result,
                    });
                }
                restore_on_the_way_out(&mut runs, &just_failed, &plan, pi, ti, fleet, &world).await;
                operator_on_the_way_out(&mut runs, &just_down, (pi, ti, &task.name), &world).await;
                // Ansible's linear strategy checks the budget after every task.
                let failed = failed_in(&runs, &batch);
                if (play.any_errors_fatal && failed > 0)
                    || (play.max_fail_percentage.is_some()
                        && failed < batch.len()
                        && budget_spent(failed, batch.len(), play.max_fail_percentage))
                {
                    stopped = true;
                    break;
                }
            }
            let failed = failed_in(&runs, &batch);
            if stopped || budget_spent(failed, size, play.max_fail_percentage) {
                let not_run: Vec<String> = hosts[offset..].to_vec();
                let later_plays = pi + 1 < plan.plays.len();
                // Stopped mid-batch, the batch's other hosts skip their remaining tasks.
                if !not_run.is_empty() || later_plays || stopped {
                    events.send(Event::Aborted {
                        reason: format!(
                            "{failed} of {size} hosts in batch {} of play {} failed{}{}",
                            bi + 1,
                            pi + 1,
                            if play.any_errors_fatal {
                                " (any_errors_fatal)".to_string()
                            } else {
                                play.max_fail_percentage
                                    .map(|p| format!(" (max_fail_percentage {p})"))
                                    .unwrap_or_default()
                            },
                            if later_plays {
                                "; the plays after it do not run"
                            } else {
                                ""
                            }
                        ),
                        not_run,
                    });
                }
                break 'plays;
            }
        }
    }
    // A node this run set pending is never left so: hosts stopped (Ctrl-C, a spent
    // failure budget) or whose playbook ended before a `success` get `failed` now.
    let left_pending: Vec<String> = order
        .iter()
        .filter(|h| runs.get(*h).is_some_and(|r| r.operator.is_some()))
        .cloned()
        .collect();
    if !left_pending.is_empty() {
        let pi = plan.plays.len().saturating_sub(1);
        let name = "GPU Operator: nodes still pending set failed, operands restored";
        events.send(Event::TaskStart {
            play: pi + 1,
            task: 0,
            name: name.to_string(),
            pos: String::new(),
            hosts: left_pending.len(),
        });
        operator_on_the_way_out(&mut runs, &left_pending, (pi, usize::MAX, name), &world).await;
    }
    let mut stopped_by_ctrl_c = Vec::new();
    let hosts: Vec<(String, HostStats)> = order
        .into_iter()
        .filter_map(|h| runs.remove(&h).map(|r| (h, r.stats, r.down)))
        .map(|(host, stats, down)| {
            let before = interrupted.get(&host).cloned();
            if let Some(task) = &before {
                stopped_by_ctrl_c.push((host.clone(), task.clone()));
            }
            events.send(Event::HostFinished {
                host: host.clone(),
                stats,
                down: down.map(|d| d.status),
                interrupted_before: before,
            });
            (host, stats)
        })
        .collect();
    Finished {
        hosts,
        interrupted: stopped_by_ctrl_c,
    }
}

/// Hosts that failed task `ti` after a `drain` get the play's next `restore` task run
/// at once, as Ansible's `always` would (unless the run is being interrupted): a failure
/// never leaves a host silently drained.
async fn restore_on_the_way_out(
    runs: &mut HashMap<String, HostRun>,
    failed: &[String],
    plan: &Plan<'_>,
    pi: usize,
    ti: usize,
    fleet: &Fleet,
    world: &Arc<RunWorld>,
) {
    let play = &plan.plays[pi];
    let Some(rti) = restore_after(plan, pi, ti) else {
        return;
    };
    let hosts: Vec<String> = failed
        .iter()
        .filter(|h| runs.get(*h).is_some_and(|r| r.drained))
        .cloned()
        .collect();
    if hosts.is_empty() {
        return;
    }
    let results = step(
        runs,
        &hosts,
        fleet.forks,
        world,
        move |mut h, w| async move {
            let r = h.restore_on_the_way_out(&w, pi, rti).await;
            (h, r)
        },
    )
    .await;
    for (host, result) in results {
        world.events.send(Event::TaskResult {
            host,
            play: pi + 1,
            task: rti + 1,
            name: play.tasks[rti].name.clone(),
            result,
        });
    }
}

/// Before a `k8s.demand` task: the pending pods' demand packed onto the GPUs of all the
/// hosts about to run it at once (their facts as they are now), each host's share kept
/// for the task and the tasks after it (`ctx.demand`).
async fn plan_demand(
    runs: &mut HashMap<String, HostRun>,
    hosts: &[String],
    d: &super::modules::K8sDemand,
    fleet: &Fleet,
    world: &Arc<RunWorld>,
) {
    let got = step(runs, hosts, fleet.forks, world, |mut h, w| async move {
        let f = h.current_facts(&w).await;
        let node = h.node_name();
        (h, (node, f))
    })
    .await;
    let mut now = Vec::new();
    let mut failed: HashMap<String, String> = HashMap::new();
    for (host, (node, facts)) in got {
        match facts {
            Ok(facts) => now.push(crate::k8s::demand::HostNow { host, node, facts }),
            Err(e) => {
                failed.insert(host, e);
            }
        }
    }
    let planned = match world.k8s.client().await {
        Ok(client) => crate::k8s::demand::plan(&client, &now, &d.namespaces).await,
        Err(e) => Err(e),
    };
    for h in hosts {
        let Some(run) = runs.get_mut(h) else { continue };
        run.demand = Some(match (&planned, failed.get(h)) {
            (_, Some(e)) => Err(e.clone()),
            (Err(e), _) => Err(e.clone()),
            (Ok(plan), None) => match plan.shares.get(h) {
                Some(Ok(share)) => Ok(share.to_json(&plan.unserved)),
                Some(Err(e)) => Err(e.clone()),
                None => Err("the host was not in the demand plan".into()),
            },
        });
    }
}

/// Hosts among `hosts` whose node this run set `pending` (GPU Operator protocol) get it
/// set `failed` with the operands restored, reported as a result of task `ti` (or of
/// the closing step, `usize::MAX`). Nodes are reached through the API server, so an
/// unreachable host's node is finished too.
async fn operator_on_the_way_out(
    runs: &mut HashMap<String, HostRun>,
    hosts: &[String],
    (pi, ti, name): (usize, usize, &str),
    world: &Arc<RunWorld>,
) {
    let marks: Vec<(String, super::modules::OperatorMark)> = hosts
        .iter()
        .filter_map(|h| {
            runs.get_mut(h)
                .and_then(|r| r.operator.take())
                .map(|m| (h.clone(), m))
        })
        .collect();
    // One or two API calls per node, and few nodes fail at once: one after another.
    for (host, mark) in marks {
        let mut result = super::modules::fail_on_the_way_out(&world.k8s, &mark).await;
        // A host still in the run when it ends never got its `success`: that is its
        // failure (the node now says `failed`).
        if ti == usize::MAX
            && let Some(r) = runs.get_mut(&host)
            && r.down.is_none()
        {
            result.status = Status::Failed;
            result.message = format!(
                "node {} was still pending when the run ended (no k8s.gpu_operator{{ state = \"success\" }} ran after it); {}",
                mark.node, result.message
            );
            r.fail(Down {
                status: Status::Failed,
                message: result.message.clone(),
                hints: Vec::new(),
            });
        }
        world.events.send(Event::TaskResult {
            host,
            play: pi + 1,
            task: ti.wrapping_add(1),
            name: name.to_string(),
            result,
        });
    }
}

/// The first `restore` task of play `pi` selected to run after task `ti`.
fn restore_after(plan: &Plan<'_>, pi: usize, ti: usize) -> Option<usize> {
    let play = &plan.plays[pi];
    plan.tasks[pi]
        .iter()
        .copied()
        .find(|&t| t > ti && matches!(&play.tasks[t].action, Action::Module(Module::Restore(_))))
}

fn failed_in(runs: &HashMap<String, HostRun>, batch: &[String]) -> usize {
    batch
        .iter()
        .filter(|h| {
            runs.get(*h)
                .and_then(|r| r.down.as_ref())
                .is_some_and(|d| d.status.is_failure())
        })
        .count()
}

/// Runs `work` on the named hosts' runs, at most `forks` at once, and puts them back;
/// returns each host's answer in `hosts` order. A host whose work panicked has lost its
/// state: it is recorded as failed, with what was counted for it before.
async fn step<T, W, F>(
    runs: &mut HashMap<String, HostRun>,
    hosts: &[String],
    forks: usize,
    world: &Arc<RunWorld>,
    work: W,
) -> Vec<(String, T)>
where
    T: Send + 'static,
    W: Fn(HostRun, Arc<RunWorld>) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = (HostRun, T)> + Send + 'static,
{
    let mut taken = Vec::new();
    let mut before = Vec::new();
    for h in hosts {
        if let Some(r) = runs.remove(h) {
            before.push((h.clone(), r.stats, r.fresh()));
            taken.push(r);
        }
    }
    let w = world.clone();
    let outs = executor::for_each(taken, forks, move |h| work(h, w.clone())).await;
    let mut answers = Vec::new();
    for ((name, stats, mut run), out) in before.into_iter().zip(outs) {
        match out {
            Ok((done, answer)) => {
                runs.insert(name.clone(), done);
                answers.push((name, answer));
            }
            Err(panic) => {
                run.stats = stats;
                run.fail(Down {
                    status: Status::Failed,
                    message: panic.clone(),
                    hints: Vec::new(),
                });
                world.events.send(Event::HostDown {
                    host: name.clone(),
                    status: Status::Failed,
                    message: panic,
                    hints: Vec::new(),
                });
                runs.insert(name, run);
            }
        }
    }
    answers
}
