//! Where the server's log lines go: a buffer in memory, written to stderr by
//! a background thread in large batches.
//!
//! Every call logs a line, so the path from a formatted line to the output
//! must cost a call next to nothing. Here a line is one append to a shared
//! buffer under a lock that nobody holds for long; the writer thread wakes
//! once per batch (at most every [`BATCH_WINDOW`]), swaps the buffer out and
//! writes it with one `write` call. (tracing-appender's non-blocking writer,
//! used before, allocates and sends each line through a channel and writes
//! 8 KiB at a time; per line that cost more than formatting it.)
//!
//! Nothing is dropped while the [`Flusher`] lives: if the output cannot keep
//! up and [`MAX_PENDING`] bytes are waiting, the callers wait for the writer,
//! as they would on a plain blocking stderr. Lines reach the output at most
//! about one batch window after they are logged; dropping the `Flusher`
//! writes the rest (waiting up to [`FINAL_FLUSH`] for a stuck output). Lines
//! logged after that, and lines the output refuses, are dropped.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long the writer lets lines gather before it writes them.
pub const BATCH_WINDOW: Duration = Duration::from_millis(10);
/// Past this many bytes waiting, a batch is written at once.
const BATCH_BYTES: usize = 256 * 1024;
/// Past this many bytes waiting, callers wait for the writer.
pub const MAX_PENDING: usize = 4 * 1024 * 1024;
/// How long dropping the [`Flusher`] waits for the last lines to be written.
pub const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// The handle the log subscriber writes through (a [`MakeWriter`]).
#[derive(Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Writes out what is left and stops the writer thread when dropped: keep
/// it alive for as long as anything may log.
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    /// The writer sleeps on this while there is nothing to write.
    has_lines: Condvar,
    /// Callers sleep on this while [`MAX_PENDING`] bytes are waiting, and
    /// the [`Flusher`] until the writer is done.
    has_room: Condvar,
}

struct State {
    pending: Vec<u8>,
    /// The writer is asleep on `has_lines`: the next line must wake it.
    writer_idle: bool,
    closed: bool,
    /// The writer thread has written everything and stopped.
    finished: bool,
}

impl LogWriter {
    /// Starts the writer thread, writing to `out`.
    pub fn start(out: impl Write + Send + 'static) -> io::Result<(Self, Flusher)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(BATCH_BYTES),
                writer_idle: false,
                closed: false,
                finished: false,
            }),
            has_lines: Condvar::new(),
            has_room: Condvar::new(),
        });
        let writer = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || write_batches(&writer, out))?;
        Ok((
            Self {
                shared: Arc::clone(&shared),
            },
            Flusher {
                shared,
                thread: Some(thread),
            },
        ))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the buffer valid: go on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer thread: sleep until there are lines, let more gather for a
/// moment, write them all, repeat; on close, write what is left and stop.
fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    loop {
        let mut state = shared.lock();
        while state.pending.is_empty() && !state.closed {
            state.writer_idle = true;
            state = shared
                .has_lines
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.pending.is_empty() {
            // Closed, and everything written.
            state.finished = true;
            drop(state);
            shared.has_room.notify_all();
            return;
        }
        if state.pending.len() < BATCH_BYTES && !state.closed {
            drop(state);
            std::thread::sleep(BATCH_WINDOW);
            state = shared.lock();
        }
        std::mem::swap(&mut state.pending, &mut batch);
        drop(state);
        shared.has_room.notify_all();
        // There is nowhere to report a failed write of the log; the lines
        // are dropped rather than retried forever.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > MAX_PENDING {
            batch = Vec::with_capacity(BATCH_BYTES); // after a burst, give memory back
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.has_lines.notify_one();
        self.shared.has_room.notify_all();
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .has_room
            .wait_timeout_while(state, FINAL_FLUSH, |s| !s.finished)
            .unwrap_or_else(PoisonError::into_inner);
        let finished = state.finished;
        drop(state);
        if let Some(thread) = self.thread.take()
            && finished
        {
            let _ = thread.join();
        }
        // Not finished: the output is stuck; leave the thread behind rather
        // than hang the process's exit on it.
    }
}

/// One log event's writer; the subscriber writes each line with one call.
pub struct LineSink<'a> {
    shared: &'a Shared,
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineSink<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineSink {
            shared: &self.shared,
        }
    }
}

impl Write for LineSink<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut state = self.shared.lock();
        if state.closed {
            return Ok(line.len()); // nobody will write it any more
        }
        while state.pending.len() >= MAX_PENDING && !state.closed {
            state = self
                .shared
                .has_room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.pending.extend_from_slice(line);
        // Only the first line of a batch pays for waking the writer.
        let wake = std::mem::replace(&mut state.writer_idle, false);
        drop(state);
        if wake {
            self.shared.has_lines.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // the writer thread flushes each batch
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// An output that keeps what it gets and counts its `write` calls.
    #[derive(Clone, Default)]
    struct Output {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        /// Each write takes this long (a slow terminal or pipe).
        delay: Duration,
    }

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            std::thread::sleep(self.delay);
            self.bytes.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(i: usize) -> String {
        format!("line {i:06} {}\n", "x".repeat(i % 50))
    }

    #[test]
    fn every_line_arrives_in_order_by_the_time_the_flusher_is_dropped() {
        let out = Output::default();
        let (writer, flusher) = LogWriter::start(out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        let mut sink = writer.make_writer();
                        sink.write_all(line(t * 5_000 + i).as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(flusher);

        let text = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        // Each thread's lines in the order it wrote them, none torn.
        for t in 0..4 {
            let mine: Vec<String> = lines
                .iter()
                .filter(|l| {
                    let n: usize = l[5..11].parse().unwrap();
                    n / 5_000 == t
                })
                .map(|l| format!("{l}\n"))
                .collect();
            let expected: Vec<String> = (0..5_000).map(|i| line(t * 5_000 + i)).collect();
            assert_eq!(mine, expected, "thread {t}");
        }
        // Written in batches, not line by line.
        let writes = *out.writes.lock().unwrap();
        assert!(writes < 2_000, "{writes} writes for 20,000 lines");
    }

    #[test]
    fn a_line_is_written_without_waiting_for_more() {
        let out = Output::default();
        let (writer, _flusher) = LogWriter::start(out.clone()).unwrap();
        writer.make_writer().write_all(b"lonely\n").unwrap();
        // Liveness, not speed: the line shows up while the flusher lives.
        let start = Instant::now();
        while out.bytes.lock().unwrap().as_slice() != b"lonely\n" {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the line was never written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn lines_after_the_flusher_is_gone_are_dropped_not_kept() {
        let out = Output::default();
        let (writer, flusher) = LogWriter::start(out.clone()).unwrap();
        writer.make_writer().write_all(b"before\n").unwrap();
        drop(flusher);
        writer.make_writer().write_all(b"after\n").unwrap();
        assert_eq!(out.bytes.lock().unwrap().as_slice(), b"before\n");
        assert!(writer.shared.lock().pending.is_empty());
    }

    #[test]
    fn a_slow_output_makes_callers_wait_instead_of_growing_or_dropping() {
        let out = Output {
            delay: Duration::from_millis(20),
            ..Output::default()
        };
        let (writer, flusher) = LogWriter::start(out.clone()).unwrap();
        let big = vec![b'y'; 64 * 1024 - 1];
        let mut peak = 0;
        for _ in 0..200 {
            let mut sink = writer.make_writer();
            sink.write_all(&big).unwrap();
            sink.write_all(b"\n").unwrap();
            peak = peak.max(writer.shared.lock().pending.len());
        }
        drop(flusher);
        // 12.5 MiB went through a buffer that never held more than the
        // limit plus one line.
        assert!(peak <= MAX_PENDING + big.len(), "peak {peak}");
        assert_eq!(out.bytes.lock().unwrap().len(), 200 * 64 * 1024);
    }
}
