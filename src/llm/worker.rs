//! The inference thread of one model, fed by a bounded queue, generating
//! several answers at once (continuous batching).
//!
//! A decode step is bound by reading the weights, and one read can serve
//! many sequences: the worker keeps up to `parallel` sequences running and
//! computes one token for each of them per step ([`super::engine::step`]).
//! A new request joins between steps; its prompt is read in slices of
//! `prefill_chunk` tokens interleaved with the decode steps, so running
//! answers keep streaming while it is read. Each sequence has its own KV
//! cache ([`Slot`]); a request is admitted only when its whole length fits
//! the KV budget (otherwise it waits at the head of the queue), and a prompt
//! prefix another slot already computed (the fixed system prompt) is copied
//! instead of recomputed.
//!
//! Each caller holds a [`Ticket`]: it receives its queue position, the answer
//! as it is generated, and the final statistics. Dropping the ticket (the
//! client went away) cancels the request: a queued one is skipped, a running
//! one stops before the next step, without disturbing the others.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::engine::{GenerationRequest, GenerationStats, Llm, Sequence, Slot, step};

#[derive(Debug, Clone)]
pub enum Event {
    /// How many requests will start before this one (0: it is next).
    Queued {
        position: usize,
    },
    /// Admitted to the batch; `admitted` counts admissions from 0, so
    /// callers can check the order even when several start in one step.
    Started {
        admitted: u64,
    },
    Text(String),
    Finished {
        text: String,
        stats: GenerationStats,
    },
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the generation queue is full ({0} waiting); try again shortly")]
    QueueFull(usize),
    #[error("the inference worker has stopped")]
    Stopped,
}

/// How a worker runs: the queue limit and its batch.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// Requests allowed to wait; more are refused.
    pub capacity: usize,
    /// Sequences generated at once (0: what the KV budget holds, see [`KvPlan`]).
    pub parallel: usize,
    /// Bytes for the keys and values of every running sequence together.
    pub kv_cache_bytes: usize,
    /// Prompt tokens read per step.
    pub prefill_chunk: usize,
}

impl WorkerOptions {
    pub fn from_config(llm: &crate::config::LlmConfig) -> WorkerOptions {
        WorkerOptions {
            capacity: llm.queue_capacity,
            parallel: llm.parallel,
            kv_cache_bytes: llm.kv_cache_mib << 20,
            prefill_chunk: llm.prefill_chunk,
        }
    }
}

/// The KV cache a worker sizes up front from its options and the model's
/// shape: reported by `enclave doctor` and the health page.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KvPlan {
    /// Sequences generated at once.
    pub parallel: usize,
    /// Positions all running sequences may hold together.
    pub budget_positions: usize,
    pub bytes_per_position: usize,
    pub budget_bytes: usize,
    /// `budget_bytes` in MiB, rounded (what a person reads).
    pub budget_mib: usize,
    pub context_window: usize,
}

impl KvPlan {
    /// A budget below one whole window is raised to it: any request the
    /// window admits must be able to run, if alone.
    pub fn new(options: &WorkerOptions, bytes_per_position: usize, window: usize) -> KvPlan {
        let budget_positions = (options.kv_cache_bytes / bytes_per_position.max(1)).max(window);
        let parallel = match options.parallel {
            0 => (budget_positions / (window / 2).max(1)).clamp(1, 16),
            n => n,
        };
        KvPlan {
            parallel,
            budget_positions,
            bytes_per_position,
            budget_bytes: budget_positions * bytes_per_position,
            budget_mib: (budget_positions * bytes_per_position + (1 << 19)) >> 20,
            context_window: window,
        }
    }
}

struct Job {
    id: u64,
    request: GenerationRequest,
    events: Sender<Event>,
    cancel: Arc<AtomicBool>,
}

struct State {
    queue: VecDeque<Job>,
    /// Sequences generating, plus one waiting for KV room.
    running: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    capacity: usize,
    next_id: AtomicU64,
}

pub struct Worker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    pub model_name: String,
    pub context_window: usize,
    pub plan: KvPlan,
}

/// A submitted request. Dropping it cancels the request.
pub struct Ticket {
    pub id: u64,
    events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
}

impl Ticket {
    /// The next event; `None` once the request is over.
    pub fn recv(&self) -> Option<Event> {
        self.events.recv().ok()
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        self.events.recv_timeout(timeout)
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Worker {
    pub fn start(mut llm: Llm, options: WorkerOptions) -> Worker {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                running: 0,
                shutdown: false,
            }),
            wake: Condvar::new(),
            capacity: options.capacity.max(1),
            next_id: AtomicU64::new(1),
        });
        llm.prefill_chunk = options.prefill_chunk.max(1);
        let model_name = llm.model.config.name.clone();
        let context_window = llm.context_window();
        let plan = KvPlan::new(
            &options,
            llm.model.config.kv_bytes_per_position(),
            context_window,
        );
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || Batch::new(llm, plan).run(&thread_shared))
            .ok();
        Worker {
            shared,
            thread,
            model_name,
            context_window,
            plan,
        }
    }

    /// Queue a request; refused at once when the queue is full.
    pub fn submit(&self, request: GenerationRequest) -> Result<Ticket, SubmitError> {
        let (tx, rx) = mpsc::channel();
        let cancel = Arc::new(AtomicBool::new(false));
        let id = self.shared.next_id.fetch_add(1, Ordering::SeqCst);
        {
            let mut state = self.shared.state.lock().map_err(|_| SubmitError::Stopped)?;
            if state.shutdown || self.thread.is_none() {
                return Err(SubmitError::Stopped);
            }
            state.queue.retain(|j| !j.cancel.load(Ordering::SeqCst));
            if state.queue.len() >= self.shared.capacity {
                return Err(SubmitError::QueueFull(state.queue.len()));
            }
            let _ = tx.send(Event::Queued {
                position: state.queue.len(),
            });
            state.queue.push_back(Job {
                id,
                request,
                events: tx,
                cancel: cancel.clone(),
            });
        }
        self.shared.wake.notify_one();
        Ok(Ticket {
            id,
            events: rx,
            cancel,
        })
    }

    /// Requests waiting (not counting the running ones).
    pub fn queue_len(&self) -> usize {
        self.shared.state.lock().map(|s| s.queue.len()).unwrap_or(0)
    }

    /// Sequences generating now.
    pub fn running(&self) -> usize {
        self.shared.state.lock().map(|s| s.running).unwrap_or(0)
    }

    pub fn is_busy(&self) -> bool {
        self.running() > 0
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.shutdown = true;
            for job in state.queue.drain(..) {
                let _ = job
                    .events
                    .send(Event::Failed("the server is shutting down".into()));
            }
        }
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A running request.
struct Active {
    job: Job,
    seq: Sequence,
}

/// The worker thread's state: the model, one slot per concurrent
/// sequence, and what runs in each.
struct Batch {
    llm: Llm,
    plan: KvPlan,
    slots: Vec<Slot>,
    active: Vec<Option<Active>>,
    /// The queue's head, tokenized, waiting for KV room.
    held: Option<(Job, Vec<u32>)>,
    /// Requests admitted so far.
    admitted: u64,
}

enum Next {
    Job(Job),
    Empty,
    Shutdown,
}

impl Batch {
    fn new(llm: Llm, plan: KvPlan) -> Batch {
        Batch {
            slots: (0..plan.parallel).map(|_| llm.new_slot()).collect(),
            active: (0..plan.parallel).map(|_| None).collect(),
            llm,
            plan,
            held: None,
            admitted: 0,
        }
    }

    fn run(mut self, shared: &Shared) {
        loop {
            // Checked every step: with every slot busy, admission does not
            // look at the queue, and a stop must not wait for answers to end.
            let stopping = shared.state.lock().map_or(true, |s| s.shutdown);
            if stopping || !self.admit(shared) {
                self.fail_all("the server is shutting down");
                return;
            }
            self.publish_running(shared);
            if self.active.iter().all(Option::is_none) {
                // Alone, any request the window admits fits the budget
                // (`KvPlan::new`); this is only a guard against spinning.
                if let Some((job, _)) = self.held.take() {
                    let _ = job.events.send(Event::Failed(
                        "the request does not fit the KV cache".into(),
                    ));
                }
                continue;
            }
            self.step();
        }
    }

    fn publish_running(&self, shared: &Shared) {
        let running = self.active.iter().flatten().count() + usize::from(self.held.is_some());
        if let Ok(mut state) = shared.state.lock() {
            state.running = running;
        }
    }

    /// Start queued requests while a slot and KV room are free. Blocks for
    /// work when nothing runs; false on shutdown.
    fn admit(&mut self, shared: &Shared) -> bool {
        while self.active.iter().any(Option::is_none) {
            let (job, prompt) = match self.held.take() {
                Some(held) => held,
                None => {
                    let idle = self.active.iter().all(Option::is_none);
                    match next_job(shared, idle) {
                        Next::Job(job) => match self.llm.prompt_tokens(&job.request) {
                            Ok(prompt) => (job, prompt),
                            Err(e) => {
                                let _ = job.events.send(Event::Failed(e.to_string()));
                                continue;
                            }
                        },
                        Next::Empty => return true,
                        Next::Shutdown => return false,
                    }
                }
            };
            if job.cancel.load(Ordering::SeqCst) {
                continue;
            }
            let needed = (prompt.len() + job.request.max_new_tokens).min(self.plan.context_window);
            let Some(slot) = self.slot_with_room(&prompt, needed) else {
                self.held = Some((job, prompt));
                return true;
            };
            self.start(slot, job, prompt, needed);
        }
        true
    }

    /// The free slot for `prompt` (the one holding most of it already), once
    /// the `needed` positions fit the budget beside every other slot's,
    /// dropping idle slots' cached prefixes if that makes room.
    fn slot_with_room(&mut self, prompt: &[u32], needed: usize) -> Option<usize> {
        let chosen = (0..self.slots.len())
            .filter(|&i| self.active[i].is_none())
            .max_by_key(|&i| {
                (
                    self.slots[i].common_prefix(prompt),
                    std::cmp::Reverse(self.slots[i].cache.capacity()),
                )
            })?;
        let others = |slots: &[Slot]| -> usize {
            slots
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != chosen)
                .map(|(_, s)| s.cache.capacity())
                .sum()
        };
        for idle in 0..self.slots.len() {
            if others(&self.slots) + needed <= self.plan.budget_positions {
                break;
            }
            if idle != chosen && self.active[idle].is_none() {
                self.slots[idle].cache.release();
                self.slots[idle].tokens.clear();
            }
        }
        (others(&self.slots) + needed <= self.plan.budget_positions).then_some(chosen)
    }

    fn start(&mut self, slot: usize, job: Job, prompt: Vec<u32>, needed: usize) {
        let mut reused = self.slots[slot].reuse_prefix(&prompt);
        self.slots[slot].cache.reserve(needed);
        // A longer prefix computed by another slot (the shared system
        // prompt, mostly) is copied rather than computed again.
        let donor = (0..self.slots.len())
            .filter(|&i| i != slot)
            .max_by_key(|&i| self.slots[i].common_prefix(&prompt));
        if let Some(donor) = donor {
            let len = self.slots[donor].common_prefix(&prompt);
            if len > reused {
                let (to, from) = pair_mut(&mut self.slots, slot, donor);
                to.copy_prefix(from, len);
                reused = len;
            }
        }
        let _ = job.events.send(Event::Started {
            admitted: self.admitted,
        });
        self.admitted += 1;
        // Timed from here, as `Llm::generate` times: the wait in the queue
        // is the caller's to measure (it holds the ticket from submit on).
        let seq = Sequence::new(job.request.clone(), prompt, reused, Instant::now());
        self.active[slot] = Some(Active { job, seq });
    }

    /// One forward step for every running sequence: a token each for those
    /// decoding, and the next prompt slice of the oldest one reading its
    /// prompt (more than one only while their slices fit one chunk).
    fn step(&mut self) {
        let chunk = self.llm.prefill_chunk;
        for i in 0..self.active.len() {
            if let Some(a) = self.active[i].as_mut()
                && a.seq.check_before_step(a.job.cancel.load(Ordering::SeqCst))
            {
                self.finish(i);
            }
        }
        let mut order: Vec<usize> = (0..self.active.len())
            .filter(|&i| self.active[i].is_some())
            .collect();
        order.sort_by_key(|&i| self.active[i].as_ref().map_or(0, |a| a.job.id));
        let mut inputs: Vec<Option<(Vec<u32>, bool)>> = vec![None; self.active.len()];
        let mut prefill_room = chunk;
        let mut any_prefill = false;
        for &i in &order {
            let Some(a) = self.active[i].as_ref() else {
                continue;
            };
            let input = a.seq.input(chunk);
            if a.seq.is_prefilling() {
                if any_prefill && input.len() > prefill_room {
                    continue;
                }
                any_prefill = true;
                prefill_room = prefill_room.saturating_sub(input.len());
            }
            inputs[i] = Some((input.to_vec(), a.seq.wants_logits(input.len())));
        }
        let mut work: Vec<(&mut Slot, &[u32], bool)> = self
            .slots
            .iter_mut()
            .zip(&inputs)
            .filter_map(|(slot, input)| {
                input
                    .as_ref()
                    .map(|(tokens, wants)| (slot, tokens.as_slice(), *wants))
            })
            .collect();
        if work.is_empty() {
            return;
        }
        let cpu = crate::os::process_cpu_secs();
        let outcome = step(&self.llm.model, &mut work);
        drop(work);
        let stepped: Vec<usize> = (0..inputs.len()).filter(|&i| inputs[i].is_some()).collect();
        self.share_cpu(&inputs, crate::os::process_cpu_secs() - cpu);
        match outcome {
            Ok(logits) => {
                for (i, logits) in stepped.into_iter().zip(logits) {
                    let len = inputs[i].as_ref().map_or(0, |(t, _)| t.len());
                    self.advance(i, len, logits);
                }
            }
            Err(e) => {
                for i in stepped {
                    if let Some(a) = self.active[i].take() {
                        let _ = a.job.events.send(Event::Failed(e.to_string()));
                    }
                }
            }
        }
    }

    /// Charge a step's CPU time to its sequences by the tokens each computed.
    fn share_cpu(&mut self, inputs: &[Option<(Vec<u32>, bool)>], secs: f64) {
        let total: usize = inputs.iter().flatten().map(|(t, _)| t.len()).sum();
        if total == 0 || secs <= 0.0 {
            return;
        }
        for (a, input) in self.active.iter_mut().zip(inputs) {
            if let (Some(a), Some((tokens, _))) = (a.as_mut(), input) {
                a.seq.add_cpu(secs * tokens.len() as f64 / total as f64);
            }
        }
    }

    /// Hand sequence `i` its step's result and pass on its new text.
    fn advance(&mut self, i: usize, len: usize, logits: Option<Vec<f32>>) {
        let window = self.plan.context_window;
        let cache_len = self.slots[i].cache.len();
        let Some(a) = self.active[i].as_mut() else {
            return;
        };
        let piece = a.seq.after_step(len, logits, &self.llm.tokenizer);
        if !piece.is_empty() && !deliver(&a.job, piece) {
            a.seq.cancel();
        }
        let rest = a.seq.check_limits(cache_len, window);
        if !rest.is_empty() {
            deliver(&a.job, rest);
        }
        if a.seq.is_done() {
            self.finish(i);
        }
    }

    fn finish(&mut self, i: usize) {
        if let Some(a) = self.active[i].take() {
            let (text, stats) = a.seq.into_result();
            let _ = a.job.events.send(Event::Finished { text, stats });
        }
    }

    fn fail_all(&mut self, why: &str) {
        for a in self.active.iter_mut().filter_map(Option::take) {
            let _ = a.job.events.send(Event::Failed(why.to_string()));
        }
        if let Some((job, _)) = self.held.take() {
            let _ = job.events.send(Event::Failed(why.to_string()));
        }
    }
}

/// Send a piece of the answer; false when its reader is gone.
fn deliver(job: &Job, piece: String) -> bool {
    !job.cancel.load(Ordering::SeqCst) && job.events.send(Event::Text(piece)).is_ok()
}

/// The next queued request (skipping cancelled ones), telling the rest
/// their new positions. Waits for one when `block`.
fn next_job(shared: &Shared, block: bool) -> Next {
    let Ok(mut state) = shared.state.lock() else {
        return Next::Shutdown;
    };
    loop {
        if state.shutdown {
            return Next::Shutdown;
        }
        match state.queue.pop_front() {
            Some(job) if job.cancel.load(Ordering::SeqCst) => continue,
            Some(job) => {
                // Under the same lock as the pop, so a concurrent submit
                // counts it as running.
                state.running += 1;
                for (i, waiting) in state.queue.iter().enumerate() {
                    let _ = waiting.events.send(Event::Queued { position: i });
                }
                return Next::Job(job);
            }
            None if block => {
                state = match shared.wake.wait(state) {
                    Ok(s) => s,
                    Err(_) => return Next::Shutdown,
                };
            }
            None => return Next::Empty,
        }
    }
}

/// Two distinct elements of `v`, the first mutably.
fn pair_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &T) {
    if a < b {
        let (left, right) = v.split_at_mut(b);
        (&mut left[a], &right[0])
    } else {
        let (left, right) = v.split_at_mut(a);
        (&mut right[0], &left[b])
    }
}
