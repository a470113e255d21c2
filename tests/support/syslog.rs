//! Captures what this test process sends to syslog (testing.md §6): binds a unix datagram
//! socket at /dev/log, keeps the messages whose sender (SCM_CREDENTIALS) is this process, and
//! removes the socket again when dropped.
//!
//! - Only one capture at a time: a process-wide mutex, plus an flock so that two test
//!   processes never fight over /dev/log.
//! - A live /dev/log that is not ours (a syslog daemon) is never clobbered: the capture fails
//!   loudly instead. A stale socket file (nobody listening) left by a killed test is replaced.
//! - glibc's syslog keeps its connection between calls and reconnects only after a failed
//!   send. `start` therefore proves delivery with a canary message before returning, and
//!   `messages` sends a closing canary and waits for it, so every message logged before the
//!   call is in the result and a capture that receives nothing fails instead of passing.
//! - Daemons the tests start (saslauthd, Dovecot) log from their own processes: `watch_session`
//!   keeps the messages of every process in that session too (each daemon has its own, see
//!   process::own_session).

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const DEV_LOG: &str = "/dev/log";
const LOCK_FILE: &str = "/tmp/pam_mailauth-test-syslog.lock";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// One syslog message: its priority (facility * 8 + severity) and the text after the header.
#[derive(Debug, Clone)]
pub struct Message {
    pub priority: u32,
    /// The whole datagram as sent (header included).
    pub raw: String,
}

impl Message {
    pub fn severity(&self) -> u32 {
        self.priority & 7
    }
    pub fn facility(&self) -> u32 {
        self.priority >> 3
    }
}

pub struct Capture {
    _guard: MutexGuard<'static, ()>,
    _lock: std::fs::File,
    socket: Arc<UnixDatagram>,
    inode: u64,
    received: Arc<Mutex<Vec<Message>>>,
    /// Session ids whose processes' messages are kept besides this process's own.
    sessions: Arc<Mutex<Vec<libc::pid_t>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    pub fn start() -> Capture {
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .expect("syslog capture lock file");
        assert_eq!(
            unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) },
            0,
            "flock {LOCK_FILE}"
        );
        if Path::new(DEV_LOG).exists() || std::fs::symlink_metadata(DEV_LOG).is_ok() {
            let meta = std::fs::symlink_metadata(DEV_LOG).unwrap();
            use std::os::unix::fs::FileTypeExt;
            assert!(
                meta.file_type().is_socket(),
                "{DEV_LOG} exists and is not a socket: not touching it; the syslog tests need \
                 a machine (container) without a syslog daemon"
            );
            // A datagram socket someone still reads answers connect(); a stale file does not.
            let live = UnixDatagram::unbound()
                .and_then(|s| s.connect(DEV_LOG))
                .is_ok()
                || UnixStream::connect(DEV_LOG).is_ok();
            assert!(
                !live,
                "{DEV_LOG} belongs to a running syslog daemon (or another program): refusing \
                 to clobber it. Run the syslog-capturing tests where no syslog daemon runs."
            );
            std::fs::remove_file(DEV_LOG).expect("remove stale /dev/log");
        }
        let socket = UnixDatagram::bind(DEV_LOG).expect("bind /dev/log");
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(DEV_LOG, std::fs::Permissions::from_mode(0o666));
        }
        let inode = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(DEV_LOG).unwrap().ino()
        };
        let one: libc::c_int = 1;
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PASSCRED,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_PASSCRED");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let socket = Arc::new(socket);
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let (socket, received, stop) = (socket.clone(), received.clone(), stop.clone());
            let sessions = sessions.clone();
            std::thread::spawn(move || {
                let me = std::process::id() as libc::pid_t;
                while !stop.load(Ordering::SeqCst) {
                    if let Some((pid, bytes)) = receive(&socket) {
                        // Other processes on the machine log here too while we own /dev/log.
                        let watched = || {
                            let sid = unsafe { libc::getsid(pid) };
                            sid > 0 && sessions.lock().unwrap().contains(&sid)
                        };
                        if pid == me || watched() {
                            received.lock().unwrap().push(parse(&bytes));
                        }
                    }
                }
            })
        };
        let capture = Capture {
            _guard: guard,
            _lock: lock,
            socket,
            inode,
            received,
            sessions,
            stop,
            reader: Some(reader),
        };
        capture.canary("start");
        capture
    }

    /// Logs a marker through glibc's syslog and waits until it arrives.
    fn canary(&self, what: &str) {
        static N: AtomicUsize = AtomicUsize::new(0);
        let marker = format!(
            "pam_mailauth-test-canary-{what}-{}",
            N.fetch_add(1, Ordering::SeqCst)
        );
        let text = CString::new(marker.clone()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // The first send after a previous capture goes to the dead socket and makes glibc
            // reconnect; sending until the marker shows up covers every reconnect path.
            unsafe {
                libc::syslog(
                    libc::LOG_AUTHPRIV | libc::LOG_DEBUG,
                    c"%s".as_ptr(),
                    text.as_ptr(),
                )
            };
            let until = Instant::now() + Duration::from_millis(300);
            while Instant::now() < until {
                if self
                    .received
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|m| m.raw.contains(&marker))
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                Instant::now() < deadline,
                "syslog capture receives nothing: glibc's syslog did not deliver a canary to \
                 {DEV_LOG}"
            );
        }
    }

    /// Also keeps the messages of the processes in session `sid` (a daemon started in its own
    /// session: its id is the daemon's pid).
    pub fn watch_session(&self, sid: i32) {
        self.sessions.lock().unwrap().push(sid);
    }

    /// Every message this process logged so far, canaries removed.
    pub fn messages(&self) -> Vec<Message> {
        self.canary("flush");
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|m| !m.raw.contains("pam_mailauth-test-canary-"))
            .cloned()
            .collect()
    }

    /// The messages of the module (`pam_mailauth(service:phase): ...`).
    pub fn module_lines(&self) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter(|m| m.raw.contains("pam_mailauth("))
            .map(|m| m.raw)
            .collect()
    }

    pub fn clear(&self) {
        self.canary("clear");
        self.received.lock().unwrap().clear();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        // Remove the socket only if it is still the one we bound.
        use std::os::unix::fs::MetadataExt;
        if std::fs::symlink_metadata(DEV_LOG).map(|m| m.ino()).ok() == Some(self.inode) {
            let _ = std::fs::remove_file(DEV_LOG);
        }
        let _ = &self.socket;
    }
}

/// One datagram and its sender's pid.
fn receive(socket: &UnixDatagram) -> Option<(libc::pid_t, Vec<u8>)> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut control = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = control.len() as _;
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    let mut pid = -1;
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS
            {
                let cred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::ucred);
                pid = cred.pid;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    buf.truncate(n as usize);
    Some((pid, buf))
}

fn parse(bytes: &[u8]) -> Message {
    let raw = String::from_utf8_lossy(bytes).into_owned();
    let priority = raw
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .and_then(|(p, _)| p.parse().ok())
        .unwrap_or(u32::MAX);
    Message { priority, raw }
}
