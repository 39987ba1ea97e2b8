//! `loadgen bench`: a load generator for every RPC, including the streaming
//! ones h2load cannot drive. It checks every answer (status OK and a real
//! order), so an error answered quickly never counts as throughput.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use order_management::client::OrderClient;
use order_management::client::progress::{Counter, Progress};
use order_management::pb::{CombinedShipment, Order};
use tonic::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Rpc {
    Get,
    Add,
    Search,
    Update,
    Process,
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub rpc: Rpc,
    /// Concurrent calls per connection.
    pub concurrency: usize,
    pub duration: Duration,
    /// Stop after this many calls in all, if sooner.
    pub count: Option<u64>,
    /// getOrder's id, searchOrders' query, processOrders' id.
    pub key: String,
    /// Orders per updateOrders / ids per processOrders call.
    pub batch: usize,
    /// How long the server may stay unreachable (every call UNAVAILABLE,
    /// none succeeding) before the run stops with an error.
    pub give_up: Duration,
}

/// The first wait after an UNAVAILABLE call, doubled up to [`MAX_BACKOFF`]:
/// a server that is down gets a few reconnects a second, not a busy loop
/// of failed calls (2.1M in 28 s before this).
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Whether the server answers, shared by every worker of a run.
struct Reach {
    started: Instant,
    /// Milliseconds from `started` to the last call that got through.
    last_answer_ms: std::sync::atomic::AtomicU64,
    unavailable: std::sync::atomic::AtomicU64,
}

impl Reach {
    fn answered(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_answer_ms
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// How long no call has got through.
    fn silent_for(&self) -> Duration {
        let last = self
            .last_answer_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        self.started
            .elapsed()
            .saturating_sub(Duration::from_millis(last))
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct BenchReport {
    pub rpc: String,
    pub connections: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub calls: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Messages received in all (1 per unary call; every streamed message).
    pub messages: u64,
    pub calls_per_second: f64,
    pub messages_per_second: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Percentiles of the calls answered OK alone: under overload, the
    /// latency of the calls the server admitted (refusals are fast and
    /// would pull the overall percentiles down).
    pub ok_p50_us: u64,
    pub ok_p99_us: u64,
    /// Answers that were OK but wrong (e.g. not the expected order).
    pub wrong: u64,
}

impl BenchReport {
    pub fn render(&self) -> String {
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "bench {rpc}: {calls} calls in {secs:.2} s over {conns} connections x {conc}\n\
             {cps:.0} calls/s, {mps:.0} messages/s\n\
             latency us: p50 {p50}  p90 {p90}  p99 {p99}  max {max}  (OK calls: p50 {ok_p50}  p99 {ok_p99})\n\
             ok {ok}, wrong {wrong}, errors: {errs}\n",
            rpc = self.rpc,
            calls = self.calls,
            secs = self.seconds,
            conns = self.connections,
            conc = self.concurrency,
            cps = self.calls_per_second,
            mps = self.messages_per_second,
            p50 = self.p50_us,
            p90 = self.p90_us,
            p99 = self.p99_us,
            max = self.max_us,
            ok_p50 = self.ok_p50_us,
            ok_p99 = self.ok_p99_us,
            ok = self.ok,
            wrong = self.wrong,
            errs = if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join(" ")
            },
        )
    }
}

/// One worker's tallies.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    ok_latencies_us: Vec<u32>,
    ok: u64,
    wrong: u64,
    messages: u64,
    errors: BTreeMap<String, u64>,
}

/// Prepares what the RPC needs (orders to update), then runs the load.
/// `clients` holds one client per connection.
pub async fn run(clients: Vec<OrderClient>, config: &BenchConfig) -> Result<BenchReport, Status> {
    let connections = clients.len();
    let mut client = clients[0].clone();
    // The reference answer every getOrder must match.
    let expected = match config.rpc {
        Rpc::Get | Rpc::Process => Some(reference(&mut client, config).await?),
        _ => None,
    };
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let started = Instant::now();
    let until = started + config.duration;
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(
        config.count.unwrap_or(u64::MAX),
    ));
    let reach = std::sync::Arc::new(Reach {
        started,
        last_answer_ms: 0.into(),
        unavailable: 0.into(),
    });
    // Calls so far, on a terminal's stderr only.
    let progress = Progress::new("calls", false);
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        for w in 0..config.concurrency {
            let worker = Worker {
                client: client.clone().max_decoding_message_size(64 * 1024 * 1024),
                config: config.clone(),
                expected: expected.clone(),
                prefix: format!("bench-{run_id}-{c}-{w}-"),
                budget: budget.clone(),
                reach: reach.clone(),
                progress: progress.counter(),
            };
            tasks.push(tokio::spawn(worker.run(until)));
        }
    }
    let mut all = Tally::default();
    for task in tasks {
        let t = task
            .await
            .map_err(|e| Status::internal(format!("bench worker failed: {e}")))??;
        all.latencies_us.extend(t.latencies_us);
        all.ok_latencies_us.extend(t.ok_latencies_us);
        all.ok += t.ok;
        all.wrong += t.wrong;
        all.messages += t.messages;
        for (k, v) in t.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish();
    all.latencies_us.sort_unstable();
    all.ok_latencies_us.sort_unstable();
    let pct = |p: f64| percentile(&all.latencies_us, p);
    let calls = all.latencies_us.len() as u64;
    Ok(BenchReport {
        rpc: format!("{:?}", config.rpc).to_lowercase(),
        connections,
        concurrency: config.concurrency,
        seconds,
        calls,
        ok: all.ok,
        errors: all.errors,
        messages: all.messages,
        calls_per_second: all.ok as f64 / seconds,
        messages_per_second: all.messages as f64 / seconds,
        p50_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        max_us: all.latencies_us.last().copied().map_or(0, u64::from),
        ok_p50_us: percentile(&all.ok_latencies_us, 0.50),
        ok_p99_us: percentile(&all.ok_latencies_us, 0.99),
        wrong: all.wrong,
    })
}

/// The order every getOrder must return, fetched before the run. A server
/// already over its limit (another load beside this one) refuses calls at
/// once: tried again, with backoff, for up to `give_up`.
async fn reference(client: &mut OrderClient, config: &BenchConfig) -> Result<Order, Status> {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        match client.get_order(config.key.clone()).await {
            Ok(order) => return Ok(order.into_inner()),
            Err(status)
                if status.code() == tonic::Code::ResourceExhausted
                    && started.elapsed() < config.give_up =>
            {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(status) => return Err(status),
        }
    }
}

/// The `p` quantile (nearest rank) of `sorted`; 0 when empty.
fn percentile(sorted: &[u32], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    u64::from(sorted[i - 1])
}

struct Worker {
    client: OrderClient,
    config: BenchConfig,
    expected: Option<Order>,
    prefix: String,
    budget: std::sync::Arc<std::sync::atomic::AtomicU64>,
    reach: std::sync::Arc<Reach>,
    progress: Counter,
}

impl Worker {
    async fn run(mut self, until: Instant) -> Result<Tally, Status> {
        let mut tally = Tally::default();
        let mut n = 0u64;
        let mut backoff = FIRST_BACKOFF;
        // updateOrders needs orders of its own to replace.
        let own: Vec<Order> = if self.config.rpc == Rpc::Update {
            let orders: Vec<Order> = (0..self.config.batch)
                .map(|i| self.order(i as u64))
                .collect();
            for o in &orders {
                self.client.add_order(o.clone()).await?;
            }
            orders
        } else {
            Vec::new()
        };
        while Instant::now() < until {
            if self
                .budget
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |b| b.checked_sub(1),
                )
                .is_err()
            {
                break;
            }
            let start = Instant::now();
            let outcome = self.call(n, &own).await;
            self.progress.inc();
            let us = start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
            tally.latencies_us.push(us);
            match &outcome {
                Err(status) if status.code() == tonic::Code::Unavailable => {}
                _ => {
                    self.reach.answered();
                    backoff = FIRST_BACKOFF;
                }
            }
            match outcome {
                Ok((messages, right)) => {
                    tally.messages += messages;
                    if right {
                        tally.ok += 1;
                        tally.ok_latencies_us.push(us);
                    } else {
                        tally.wrong += 1;
                    }
                }
                Err(status) => {
                    *tally
                        .errors
                        .entry(format!("{:?}", status.code()))
                        .or_default() += 1;
                    if status.code() == tonic::Code::Unavailable {
                        self.unreachable(&status, until, &mut backoff).await?;
                    }
                }
            }
            n += 1;
        }
        Ok(tally)
    }

    /// After an UNAVAILABLE call: waits before the next (the reconnect),
    /// longer each time, or ends the run once the server has been silent
    /// for `give_up`.
    async fn unreachable(
        &self,
        status: &Status,
        until: Instant,
        backoff: &mut Duration,
    ) -> Result<(), Status> {
        let failed = self
            .reach
            .unavailable
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let silent = self.reach.silent_for();
        if silent >= self.config.give_up {
            return Err(Status::unavailable(format!(
                "the server has been unreachable for {:.1} s ({failed} calls failed, \
                 reconnecting with backoff up to {} s); stopping the run. Last error: {}",
                silent.as_secs_f64(),
                MAX_BACKOFF.as_secs(),
                status.message()
            )));
        }
        let wait = (*backoff).min(until.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait).await;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        Ok(())
    }

    fn order(&self, n: u64) -> Order {
        Order {
            id: format!("{}{n}", self.prefix),
            items: vec!["bench item".into(), "another item".into()],
            description: "benchmark order".into(),
            price: 10.0,
            destination: "Seoul".into(),
        }
    }

    /// One call: (messages received, whether the answer was right).
    async fn call(&mut self, n: u64, own: &[Order]) -> Result<(u64, bool), Status> {
        match self.config.rpc {
            Rpc::Get => {
                let order = self
                    .client
                    .get_order(self.config.key.clone())
                    .await?
                    .into_inner();
                Ok((1, Some(&order) == self.expected.as_ref()))
            }
            Rpc::Add => {
                let order = self.order(n);
                let id = self.client.add_order(order.clone()).await?.into_inner();
                Ok((1, id == order.id))
            }
            Rpc::Search => {
                let mut stream = self
                    .client
                    .search_orders(self.config.key.clone())
                    .await?
                    .into_inner();
                let mut messages = 0;
                let mut right = true;
                let needle = self.config.key.to_lowercase();
                while let Some(order) = stream.message().await? {
                    messages += 1;
                    right &= order
                        .items
                        .iter()
                        .any(|i| i.to_lowercase().contains(&needle));
                }
                Ok((messages, right && messages > 0))
            }
            Rpc::Update => {
                let reply = self
                    .client
                    .update_orders(tokio_stream::iter(own.to_vec()))
                    .await?
                    .into_inner();
                Ok((1, reply.starts_with("Updated Order IDs")))
            }
            Rpc::Process => {
                let ids = vec![self.config.key.clone(); self.config.batch];
                let mut stream = self
                    .client
                    .process_orders(tokio_stream::iter(ids))
                    .await?
                    .into_inner();
                let mut messages = 0;
                let mut orders = 0;
                while let Some(CombinedShipment {
                    orders_list,
                    status,
                    ..
                }) = stream.message().await?
                {
                    messages += 1;
                    orders += orders_list.len();
                    if status != "Processed!" {
                        return Ok((messages, false));
                    }
                }
                Ok((messages, orders == self.config.batch))
            }
        }
    }
}
