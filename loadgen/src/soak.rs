//! `loadgen soak`: a bounded load of all five RPCs at random, with random
//! cancellations and deadlines, over many connections, that checks every
//! answer and, at the end, that the store holds exactly what was
//! acknowledged.
//!
//! Each worker owns the ids it writes (`soak-<run>-<worker>-<n>`), so it
//! knows what the store must hold for them without coordinating. A write
//! whose outcome is unknown (cancelled, or past its deadline) leaves its id
//! "uncertain": the final check then accepts either the old or the new value.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use tonic::{Code, IntoRequest, Request, Status};

use order_management::client::OrderClient;
use order_management::client::progress::{Counter, Progress};
use order_management::pb::Order;

/// Settings of one soak run.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub connections: usize,
    pub workers_per_connection: usize,
    pub duration: Duration,
    pub seed: u64,
    /// The server's pid, to report its resident memory before and after.
    pub server_pid: Option<u32>,
}

/// What a soak run saw.
#[derive(Debug, Default)]
pub struct SoakReport {
    pub calls: u64,
    /// Every status seen, expected or not, by code name.
    pub statuses: BTreeMap<String, u64>,
    /// Answers that broke the contract, described.
    pub unexpected: Vec<String>,
    /// Orders checked at the end, and how many did not match.
    pub verified: usize,
    pub inconsistent: Vec<String>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub elapsed: Duration,
}

impl SoakReport {
    pub fn passed(&self) -> bool {
        self.unexpected.is_empty() && self.inconsistent.is_empty()
    }

    fn merge(&mut self, other: SoakReport) {
        self.calls += other.calls;
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        self.unexpected.extend(other.unexpected);
        self.verified += other.verified;
        self.inconsistent.extend(other.inconsistent);
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "soak: {} calls in {:.1} s, {} orders verified\n",
            self.calls,
            self.elapsed.as_secs_f64(),
            self.verified
        );
        out.push_str("statuses:");
        for (code, n) in &self.statuses {
            out.push_str(&format!(" {code}={n}"));
        }
        out.push('\n');
        if let (Some(before), Some(after)) = (self.rss_before_kib, self.rss_after_kib) {
            out.push_str(&format!(
                "server RSS: {before} KiB before, {after} KiB after ({:+} KiB)\n",
                after as i64 - before as i64
            ));
        }
        for u in self.unexpected.iter().take(20) {
            out.push_str(&format!("UNEXPECTED: {u}\n"));
        }
        for i in self.inconsistent.iter().take(20) {
            out.push_str(&format!("INCONSISTENT: {i}\n"));
        }
        out.push_str(&format!(
            "{} unexpected statuses, {} inconsistent orders: {}\n",
            self.unexpected.len(),
            self.inconsistent.len(),
            if self.passed() { "PASS" } else { "FAIL" }
        ));
        out
    }
}

/// Resident memory of a process, from /proc (Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the soak with `clients` (one per connection).
pub async fn run(clients: Vec<OrderClient>, config: &SoakConfig) -> SoakReport {
    let started = Instant::now();
    let rss_before = config.server_pid.and_then(rss_kib);
    let run_id = format!("{:x}", config.seed);
    let deadline = started + config.duration;
    // Calls so far, on a terminal's stderr only.
    let progress = Progress::new("calls", false);
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        for w in 0..config.workers_per_connection {
            let worker = Worker {
                client: client.clone(),
                prefix: format!("soak-{run_id}-{c}-{w}-"),
                rng: fastrand::Rng::with_seed(config.seed ^ ((c as u64) << 32 | w as u64)),
                known: HashMap::new(),
                next: 0,
                report: SoakReport::default(),
                progress: progress.counter(),
            };
            tasks.push(tokio::spawn(worker.run(deadline)));
        }
    }
    let mut report = SoakReport::default();
    for task in tasks {
        match task.await {
            Ok(r) => report.merge(r),
            Err(e) => report.unexpected.push(format!("worker task failed: {e}")),
        }
    }
    progress.finish();
    report.elapsed = started.elapsed();
    report.rss_before_kib = rss_before;
    // Let the server settle (closed streams, freed buffers) before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.rss_after_kib = config.server_pid.and_then(rss_kib);
    report
}

/// What the store must hold for one id.
#[derive(Debug, Clone)]
enum Expected {
    /// Acknowledged: exactly this.
    Is(Order),
    /// An unacknowledged write may or may not have landed: one of these
    /// (`None` = absent).
    OneOf(Vec<Option<Order>>),
}

impl Expected {
    fn accepts(&self, actual: Option<&Order>) -> bool {
        match self {
            Expected::Is(o) => actual == Some(o),
            Expected::OneOf(options) => options.iter().any(|o| o.as_ref() == actual),
        }
    }

    /// The state after an unacknowledged write of `attempt`.
    fn maybe(self, attempt: Option<Order>) -> Self {
        let mut options = match self {
            Expected::Is(o) => vec![Some(o)],
            Expected::OneOf(v) => v,
        };
        options.push(attempt);
        Expected::OneOf(options)
    }
}

struct Worker {
    client: OrderClient,
    prefix: String,
    rng: fastrand::Rng,
    known: HashMap<String, Expected>,
    next: u64,
    report: SoakReport,
    progress: Counter,
}

/// Outcomes that say nothing about the server's correctness: the caller
/// gave up (its deadline, its cancel) or the server was full.
fn gave_up(code: Code) -> bool {
    matches!(
        code,
        Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted
    )
}

impl Worker {
    async fn run(mut self, until: Instant) -> SoakReport {
        while Instant::now() < until {
            match self.rng.u8(0..100) {
                0..=24 => self.add().await,
                25..=29 => self.add_invalid().await,
                30..=54 => self.get().await,
                55..=69 => self.search().await,
                70..=84 => self.update().await,
                _ => self.process().await,
            }
        }
        self.verify().await;
        self.report
    }

    fn count(&mut self, result: Result<(), &Status>) {
        self.report.calls += 1;
        self.progress.inc();
        let code = result.err().map_or(Code::Ok, Status::code);
        *self.report.statuses.entry(format!("{code:?}")).or_default() += 1;
    }

    fn unexpected(&mut self, what: &str, status: &Status) {
        self.report
            .unexpected
            .push(format!("{what}: {:?} {}", status.code(), status.message()));
    }

    /// A request with a random deadline: mostly generous, sometimes tight
    /// enough to expire mid-call.
    fn request<T>(&mut self, message: T) -> Request<T> {
        let mut request = message.into_request();
        let ms = if self.rng.u8(0..10) == 0 {
            self.rng.u64(1..20)
        } else {
            5_000
        };
        request.set_timeout(Duration::from_millis(ms));
        request
    }

    fn new_order(&mut self) -> Order {
        let id = format!("{}{}", self.prefix, self.next);
        self.next += 1;
        let items = (0..self.rng.usize(1..4))
            .map(|i| format!("{}item{i}", self.prefix))
            .collect();
        Order {
            id,
            items,
            description: "soak".into(),
            price: self.rng.u32(0..100_000) as f32 / 100.0,
            destination: ["Seoul", "Busan", "Incheon"][self.rng.usize(0..3)].into(),
        }
    }

    fn random_known(&mut self) -> Option<String> {
        if self.known.is_empty() {
            return None;
        }
        let i = self.rng.usize(0..self.known.len());
        self.known.keys().nth(i).cloned()
    }

    async fn add(&mut self) {
        let order = self.new_order();
        let id = order.id.clone();
        let request = self.request(order.clone());
        let result = self.client.add_order(request).await;
        self.count(result.as_ref().map(drop));
        match result {
            Ok(reply) if reply.get_ref() == &id => {
                self.known.insert(id, Expected::Is(order));
            }
            Ok(reply) => self.report.unexpected.push(format!(
                "addOrder {id}: replied with id {:?}",
                reply.get_ref()
            )),
            Err(s) if gave_up(s.code()) => {
                self.known
                    .insert(id, Expected::OneOf(vec![None, Some(order)]));
            }
            Err(s) => self.unexpected(&format!("addOrder {id}"), &s),
        }
    }

    async fn add_invalid(&mut self) {
        let mut order = self.new_order();
        order.price = -1.0;
        let id = order.id.clone();
        let request = self.request(order);
        let result = self.client.add_order(request).await;
        self.count(result.as_ref().map(drop));
        match result {
            Err(s) if s.code() == Code::InvalidArgument || gave_up(s.code()) => {}
            Ok(_) => self
                .report
                .unexpected
                .push(format!("addOrder {id}: invalid order accepted")),
            Err(s) => self.unexpected(&format!("addOrder invalid {id}"), &s),
        }
        // Rejected: must never be visible.
        self.known.insert(id, Expected::OneOf(vec![None]));
    }

    async fn get(&mut self) {
        let Some(id) = self.random_known() else {
            return self.add().await;
        };
        let request = self.request(id.clone());
        let result = self.client.get_order(request).await;
        self.count(result.as_ref().map(drop));
        let expected = self.known[&id].clone();
        match result {
            Ok(order) if expected.accepts(Some(order.get_ref())) => {}
            Err(s) if s.code() == Code::NotFound && expected.accepts(None) => {}
            Err(s) if gave_up(s.code()) => {}
            Ok(order) => self.report.inconsistent.push(format!(
                "getOrder {id}: got {:?}, expected {expected:?}",
                order.get_ref()
            )),
            Err(s) => self.unexpected(&format!("getOrder {id}"), &s),
        }
    }

    async fn search(&mut self) {
        let query = format!("{}ITEM", self.prefix); // case-insensitive match
        let cancel_after = (self.rng.u8(0..4) == 0).then(|| self.rng.usize(0..3));
        let request = self.request(query);
        let mut stream = match self.client.search_orders(request).await {
            Ok(s) => s.into_inner(),
            Err(s) => {
                self.count(Err(&s));
                if !gave_up(s.code()) {
                    self.unexpected("searchOrders", &s);
                }
                return;
            }
        };
        let mut last: Option<String> = None;
        let mut received = 0;
        let outcome = loop {
            if cancel_after == Some(received) {
                break Err(Status::cancelled("cancelled by the soak client"));
            }
            match stream.message().await {
                Ok(Some(order)) => {
                    received += 1;
                    if !order.id.starts_with(&self.prefix) {
                        break Err(Status::internal(format!(
                            "foreign order {} in results",
                            order.id
                        )));
                    }
                    if last.as_ref().is_some_and(|l| *l >= order.id) {
                        break Err(Status::internal("results out of id order"));
                    }
                    last = Some(order.id);
                }
                Ok(None) => break Ok(()),
                Err(s) => break Err(s),
            }
        };
        drop(stream); // cancels the call if it is still open
        self.count(outcome.as_ref().map(|_| ()));
        if let Err(s) = outcome
            && !gave_up(s.code())
        {
            self.unexpected("searchOrders", &s);
        }
    }

    async fn update(&mut self) {
        let mut ids: Vec<String> = (0..self.rng.usize(1..4))
            .filter_map(|_| self.random_known())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return self.add().await;
        }
        let include_unknown = self.rng.u8(0..10) == 0;
        let mut orders: Vec<Order> = ids
            .iter()
            .map(|id| Order {
                id: id.clone(),
                items: vec![format!("{}item-updated-{}", self.prefix, self.rng.u32(..))],
                description: "soak update".into(),
                price: 1.0,
                destination: "Seoul".into(),
            })
            .collect();
        if include_unknown {
            orders.push(Order {
                id: format!("{}never-added", self.prefix),
                ..orders[0].clone()
            });
        }
        let request = self.request(tokio_stream::iter(orders.clone()));
        let result = self.client.update_orders(request).await;
        self.count(result.as_ref().map(drop));
        match result {
            Ok(_) if include_unknown => self
                .report
                .unexpected
                .push("updateOrders with an unknown id succeeded".into()),
            Ok(_) => {
                for order in orders {
                    self.known.insert(order.id.clone(), Expected::Is(order));
                }
            }
            // All or nothing: NOT_FOUND means nothing changed. It is right
            // only if some id may really be absent.
            Err(s) if s.code() == Code::NotFound && self.may_be_absent(&orders) => {}
            // The caller gave up: the outcome is unknown.
            Err(s) if gave_up(s.code()) => {
                for order in orders {
                    if let Some(e) = self.known.remove(&order.id) {
                        let attempt = Some(order.clone());
                        self.known.insert(order.id, e.maybe(attempt));
                    }
                }
            }
            Err(s) => self.unexpected("updateOrders", &s),
        }
    }

    async fn process(&mut self) {
        let ids: Vec<String> = (0..self.rng.usize(1..6))
            .filter_map(|_| self.random_known())
            .collect();
        if ids.is_empty() {
            return self.add().await;
        }
        let request = self.request(tokio_stream::iter(ids.clone()));
        let result = match self.client.process_orders(request).await {
            Ok(stream) => {
                let mut stream = stream.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(shipment)) if shipment.status == "Processed!" => {}
                        Ok(Some(s)) => break Err(Status::internal(format!("bad shipment {s:?}"))),
                        Ok(None) => break Ok(()),
                        Err(s) => break Err(s),
                    }
                }
            }
            Err(s) => Err(s),
        };
        self.count(result.as_ref().map(|_| ()));
        match result {
            Ok(()) => {}
            Err(s) if gave_up(s.code()) => {}
            Err(s) if s.code() == Code::NotFound && self.may_be_absent_ids(&ids) => {}
            Err(s) => self.unexpected("processOrders", &s),
        }
    }

    /// getOrder for the final check. A full server (RESOURCE_EXHAUSTED) is
    /// asked again with backoff: reads are safe to retry.
    async fn read_back(&mut self, id: &str) -> Result<Option<Order>, Status> {
        let mut backoff = Duration::from_millis(5);
        for _ in 0..50 {
            match self.client.get_order(id.to_owned()).await {
                Ok(o) => return Ok(Some(o.into_inner())),
                Err(s) if s.code() == Code::NotFound => return Ok(None),
                Err(s) if s.code() == Code::ResourceExhausted => {
                    tokio::time::sleep(backoff + Duration::from_millis(self.rng.u64(0..5))).await;
                    backoff = (backoff * 2).min(Duration::from_millis(200));
                }
                Err(s) => return Err(s),
            }
        }
        Err(Status::resource_exhausted("still refused after 50 tries"))
    }

    fn may_be_absent(&self, orders: &[Order]) -> bool {
        orders
            .iter()
            .any(|o| self.known.get(&o.id).is_none_or(|e| e.accepts(None)))
    }

    fn may_be_absent_ids(&self, ids: &[String]) -> bool {
        ids.iter()
            .any(|id| self.known.get(id).is_none_or(|e| e.accepts(None)))
    }

    /// Every id this worker touched holds what the answers said it must.
    async fn verify(&mut self) {
        let known = std::mem::take(&mut self.known);
        for (id, expected) in known {
            let actual = match self.read_back(&id).await {
                Ok(order) => order,
                Err(s) => {
                    self.unexpected(&format!("final getOrder {id}"), &s);
                    continue;
                }
            };
            self.report.verified += 1;
            if !expected.accepts(actual.as_ref()) {
                self.report
                    .inconsistent
                    .push(format!("{id}: holds {actual:?}, expected {expected:?}"));
            }
        }
    }
}
