//! TLS for tests: certificates made at test time with the `openssl` command, and an HTTPS
//! server (native-tls) that hands each request to a handler such as the MailStore fake.

use super::http::{read_request, write_answer, Reply, Request};
use super::pam::TempDir;
use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A certificate and its private key, both PEM files.
#[derive(Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// Modes as an admin's certificate files have them, whatever the umask the tests run
    /// under: the module refuses a `cafile=` that others can change.
    fn as_an_admin_installs_it(&self) {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        mode(&self.cert, 0o644).unwrap();
        mode(&self.key, 0o600).unwrap();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    super::process::output_of(
        Command::new("openssl").args(args).current_dir(dir),
        "openssl",
    );
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// Certificates for one test: a private CA and whatever it or `self_signed` makes.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: TempDir::new("pki"),
        }
    }

    fn files(&self, name: &str) -> CertFiles {
        CertFiles {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        }
    }

    /// A self-signed certificate (its own CA) for the given subjectAltName, e.g.
    /// `IP:127.0.0.1,DNS:localhost`.
    pub fn self_signed(&self, name: &str, san: &str) -> CertFiles {
        self.root(name, "/CN=pam_mailauth test", Some(san))
    }

    /// A CA certificate (what an admin would put in `cafile=`).
    pub fn ca(&self, name: &str) -> CertFiles {
        self.root(name, "/CN=pam_mailauth test CA", None)
    }

    fn root(&self, name: &str, subject: &str, san: Option<&str>) -> CertFiles {
        let f = self.files(name);
        let (cert, key) = (f.cert.to_str().unwrap(), f.key.to_str().unwrap());
        let mut args = vec!["req", "-x509"];
        args.extend(EC);
        args.extend([
            "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", subject,
        ]);
        let san = san.map(|s| format!("subjectAltName={s}"));
        if let Some(san) = &san {
            args.extend(["-addext", san.as_str()]);
        }
        openssl(self.dir.path(), &args);
        f.as_an_admin_installs_it();
        f
    }

    /// A server certificate for `san` issued by `ca`.
    pub fn issued(&self, ca: &CertFiles, name: &str, san: &str) -> CertFiles {
        let f = self.files(name);
        let (cert, key) = (f.cert.to_str().unwrap(), f.key.to_str().unwrap());
        let csr = self.dir.path().join(format!("{name}.csr"));
        let ext = self.dir.path().join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\nsubjectAltName={san}\n"
            ),
        )
        .unwrap();
        let mut args = vec!["req", "-new"];
        args.extend(EC);
        args.extend([
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr.to_str().unwrap(),
            "-subj",
            "/CN=pam_mailauth test server",
        ]);
        openssl(self.dir.path(), &args);
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                ca.cert.to_str().unwrap(),
                "-CAkey",
                ca.key.to_str().unwrap(),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                ext.to_str().unwrap(),
                "-out",
                cert,
            ],
        );
        f.as_an_admin_installs_it();
        f
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// An HTTPS server presenting one certificate. Counts handshakes that failed (the client
/// refused the certificate) and records the requests that got through.
pub struct TlsServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    handshake_failures: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TlsServer {
    pub fn start(
        cert: &CertFiles,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> TlsServer {
        let identity = native_tls::Identity::from_pkcs8(
            &std::fs::read(&cert.cert).unwrap(),
            &std::fs::read(&cert.key).unwrap(),
        )
        .unwrap();
        let acceptor = Arc::new(native_tls::TlsAcceptor::new(identity).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handshake_failures = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (r, f, s) = (requests.clone(), handshake_failures.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (r, f, h, a) = (r.clone(), f.clone(), handler.clone(), acceptor.clone());
                std::thread::spawn(move || {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                    let _ = conn.set_nodelay(true);
                    match a.accept(conn) {
                        Ok(stream) => serve(stream, &r, &*h),
                        Err(_) => {
                            f.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        TlsServer {
            addr,
            requests,
            handshake_failures,
            stop,
        }
    }

    /// `https://HOST:port{path}`; HOST is `127.0.0.1` or `localhost`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.addr.port())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    pub fn handshake_failures(&self) -> usize {
        self.handshake_failures.load(Ordering::SeqCst)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(stream: native_tls::TlsStream<TcpStream>, requests: &Mutex<Vec<Request>>, h: &Handler) {
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        requests.lock().unwrap().push(req.clone());
        let Reply::Http {
            status,
            headers,
            body,
        } = h(&req)
        else {
            return;
        };
        if write_answer(reader.get_mut(), status, &headers, &body).is_err() {
            return;
        }
    }
}
