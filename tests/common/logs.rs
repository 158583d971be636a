//! Capturing the service's own log lines in a test.

use std::sync::Arc;

/// Captures every log line (all levels) emitted on this thread while it lives.
/// `#[tokio::test]` runs the server's tasks on the test's thread, so this sees the
/// service's own logs too.
///
/// One global TRACE subscriber is installed for the whole test binary and routes
/// lines to the capturing thread's buffer. Per-test scoped dispatchers were flaky:
/// tracing caches each callsite's interest globally, and a callsite first hit on
/// another test's thread (with no subscriber) can cache "never" while a scoped
/// dispatcher registers, silently dropping its lines.
pub struct LogCapture {
    buffer: Arc<std::sync::Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<std::sync::Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

impl LogCapture {
    pub fn start() -> Self {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(|| ThreadCaptureWriter)
                .try_init()
                .expect("LogCapture needs to install the global subscriber");
        });
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        CAPTURE.with(|c| *c.borrow_mut() = Some(buffer.clone()));
        Self { buffer }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

struct ThreadCaptureWriter;

impl std::io::Write for ThreadCaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buffer) = c.borrow().as_ref() {
                buffer.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
