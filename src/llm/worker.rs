//! One inference thread that owns the model, fed by a bounded queue.
//!
//! A model is too large to load twice and a CPU is fastest with one request
//! at a time, so requests wait in a first-in-first-out queue of bounded
//! length. Each caller holds a [`Ticket`]: it receives its queue position,
//! the answer as it is generated, and the final statistics. Dropping the
//! ticket (the client went away) cancels the request: a queued one is
//! skipped, a running one stops at the next token.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::engine::{GenerationRequest, GenerationStats, Llm};

#[derive(Debug, Clone)]
pub enum Event {
    /// How many requests are ahead of this one (0: it is next).
    Queued {
        position: usize,
    },
    Started,
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

struct Job {
    id: u64,
    request: GenerationRequest,
    events: Sender<Event>,
    cancel: Arc<AtomicBool>,
}

struct State {
    queue: VecDeque<Job>,
    running: Option<u64>,
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
    pub fn start(llm: Llm, capacity: usize) -> Worker {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                running: None,
                shutdown: false,
            }),
            wake: Condvar::new(),
            capacity: capacity.max(1),
            next_id: AtomicU64::new(1),
        });
        let model_name = llm.model.config.name.clone();
        let context_window = llm.context_window();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("inference".into())
            .spawn(move || run(llm, &thread_shared))
            .ok();
        Worker {
            shared,
            thread,
            model_name,
            context_window,
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
            let position = state.queue.len() + usize::from(state.running.is_some());
            let _ = tx.send(Event::Queued { position });
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

    /// Requests waiting (not counting the one running).
    pub fn queue_len(&self) -> usize {
        self.shared.state.lock().map(|s| s.queue.len()).unwrap_or(0)
    }

    pub fn is_busy(&self) -> bool {
        self.shared
            .state
            .lock()
            .map(|s| s.running.is_some())
            .unwrap_or(false)
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

fn run(mut llm: Llm, shared: &Shared) {
    loop {
        let job = {
            let Ok(mut state) = shared.state.lock() else {
                return;
            };
            state.running = None;
            loop {
                if state.shutdown {
                    return;
                }
                match state.queue.pop_front() {
                    Some(job) if job.cancel.load(Ordering::SeqCst) => continue,
                    Some(job) => {
                        // Under the same lock as the pop, so a concurrent
                        // submit always counts the running job.
                        state.running = Some(job.id);
                        for (i, waiting) in state.queue.iter().enumerate() {
                            let _ = waiting.events.send(Event::Queued { position: i + 1 });
                        }
                        break job;
                    }
                    None => {
                        state = match shared.wake.wait(state) {
                            Ok(s) => s,
                            Err(_) => return,
                        };
                    }
                }
            }
        };
        let _ = job.events.send(Event::Started);
        let mut on_text = |piece: &str| {
            if job.cancel.load(Ordering::SeqCst) {
                return false;
            }
            piece.is_empty() || job.events.send(Event::Text(piece.to_string())).is_ok()
        };
        let outcome = llm.generate(&job.request, &mut on_text);
        let event = match outcome {
            Ok((text, stats)) => Event::Finished { text, stats },
            Err(e) => Event::Failed(e.to_string()),
        };
        let _ = job.events.send(event);
    }
}
