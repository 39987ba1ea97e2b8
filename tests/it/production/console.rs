//! The orders console at `/` (src/console/), in a real browser: Debian's
//! headless `chromium` driven through `chromedriver` (WebDriver, by
//! fantoccini). It adds an order through the page, is shown a field's
//! violation next to the field with the request id, finds the order by
//! searching, opens it, and saves a screenshot as docs/console.png.
//!
//! `.ci/run` installs `chromium` and `chromium-driver`; in CI (`CI` set) a
//! missing browser fails the test, elsewhere the test says so and skips.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use super::harness::Prod;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            url: format!("http://{addr}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser is installed; in CI its absence is a failure.
fn browser_present() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "{CHROMIUM} and {CHROMEDRIVER} are required in CI (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED console browser test: {CHROMIUM} / {CHROMEDRIVER} not installed \
             (apt-get install chromium chromium-driver)"
        );
    }
    present
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,800"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session with chromium")
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until `css`'s text is not empty, and returns it.
async fn wait_text(client: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = text_of(client, css).await;
        if !text.trim().is_empty() {
            return text;
        }
        assert!(Instant::now() < deadline, "{css} stayed empty");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fill(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_an_order_through_the_page_and_find_it_by_search() {
    if !browser_present() {
        return;
    }
    let server = Prod::start(&[]);
    let driver = Driver::start();
    let client = browser(&driver).await;
    client.goto(&server.url()).await.unwrap();

    // No items: the violation is shown next to the items field, and the
    // error names its request id.
    fill(&client, "input[name=destination]", "Lima").await;
    client
        .find(Locator::Css("#add button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let violation = wait_text(&client, ".field-error[data-field=items]").await;
    assert!(violation.contains("at least one item"), "{violation}");
    let request_id = wait_text(&client, "#error .request-id").await;
    assert!(uuid_like(&request_id), "{request_id}");

    let item = format!("Zebra lamp {}", std::process::id());
    fill(&client, "textarea[name=items]", &item).await;
    fill(&client, "input[name=price]", "12.5").await;
    fill(
        &client,
        "input[name=description]",
        "added by the browser test",
    )
    .await;
    client
        .find(Locator::Css("#add button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let added = wait_text(&client, "#add-result").await;
    let id = added
        .strip_prefix("Added order ")
        .unwrap_or_else(|| panic!("{added}"))
        .to_owned();

    let query = item.to_lowercase();
    fill(&client, "#q", &query).await;
    // The search of the whole query has ended, and found only the new order.
    let done = format!("1 order with an item containing \u{201c}{query}\u{201d}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while text_of(&client, "#status").await != done {
        assert!(
            Instant::now() < deadline,
            "the search did not end with {done:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = format!("tr[data-id='{id}']");
    let found = text_of(&client, &row).await;
    assert!(found.contains(&item), "{found}");
    client
        .find(Locator::Css(&row))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(wait_text(&client, "#detail-id").await, id);

    let png = client.screenshot().await.unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console.png");
    std::fs::write(&path, png).unwrap();
    client.close().await.unwrap();
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
}
