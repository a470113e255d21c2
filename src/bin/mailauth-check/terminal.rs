//! Answers from the person at the terminal, or from standard input when that is not a terminal
//! (scripts, tests). A password is read with echo off, into memory wiped on drop, and is never
//! written anywhere: not echoed, not printed, not logged.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Longest answer accepted: libpam's own limit for one conversation reply (PAM_MAX_RESP_SIZE).
const MAX_ANSWER: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    On,
    Off,
}

/// The terminal settings before echo was first switched off, for the signal handler.
static ORIGINAL: OnceLock<libc::termios> = OnceLock::new();
/// Whether echo is off right now (an interrupt must switch it back on).
static ECHO_IS_OFF: AtomicBool = AtomicBool::new(false);

fn stdin_is_a_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDIN_FILENO) == 1 }
}

/// Shows `prompt` (on standard error, and only to a person at a terminal) and reads one line.
/// The line ends at a newline, which is not part of the answer; end of input before any byte
/// is an error, so a script that sends nothing is not taken to have sent an empty password.
pub fn ask(prompt: &str, echo: Echo) -> io::Result<Zeroizing<Vec<u8>>> {
    let terminal = stdin_is_a_terminal();
    if terminal {
        let mut err = io::stderr().lock();
        let _ = err.write_all(prompt.as_bytes());
        let _ = err.flush();
    }
    let silenced = if terminal && echo == Echo::Off {
        Some(EchoOff::new()?)
    } else {
        None
    };
    let answer = read_line();
    if silenced.is_some() {
        drop(silenced);
        // The Enter the person typed was not echoed either.
        eprintln!();
    }
    answer
}

/// One line from standard input, read a byte at a time so that nothing beyond it is consumed
/// (the next prompt reads the next line) and no buffer outside ours ever holds the password.
fn read_line() -> io::Result<Zeroizing<Vec<u8>>> {
    let mut line = Zeroizing::new(Vec::with_capacity(64));
    loop {
        let mut byte = 0u8;
        // SAFETY: one byte into a valid one-byte buffer.
        let n = unsafe { libc::read(libc::STDIN_FILENO, (&mut byte as *mut u8).cast(), 1) };
        match n {
            1 if byte == b'\n' => break,
            1 => {
                if line.len() == MAX_ANSWER {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the answer is longer than {MAX_ANSWER} bytes"),
                    ));
                }
                line.push(byte);
            }
            0 if line.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "no answer: standard input ended",
                ))
            }
            0 => break,
            _ => {
                let err = io::Error::last_os_error();
                if err.kind() != io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// Echo switched off on the terminal for as long as this lives.
struct EchoOff {
    before: libc::termios,
}

impl EchoOff {
    fn new() -> io::Result<EchoOff> {
        // SAFETY: termios is plain data, filled in by tcgetattr.
        let mut before: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut before) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let _ = ORIGINAL.set(before);
        restore_echo_on_interrupt();
        let mut quiet = before;
        quiet.c_lflag &= !(libc::ECHO | libc::ECHOE | libc::ECHOK);
        ECHO_IS_OFF.store(true, Ordering::SeqCst);
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &quiet) } != 0 {
            ECHO_IS_OFF.store(false, Ordering::SeqCst);
            return Err(io::Error::last_os_error());
        }
        Ok(EchoOff { before })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSAFLUSH, &self.before) };
        ECHO_IS_OFF.store(false, Ordering::SeqCst);
    }
}

/// Ctrl-C at the password prompt must not leave the admin's terminal without echo.
fn restore_echo_on_interrupt() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            // SAFETY: installs an async-signal-safe handler (tcsetattr, signal, raise only).
            unsafe { libc::signal(signal, on_interrupt as *const () as libc::sighandler_t) };
        }
    });
}

extern "C" fn on_interrupt(signal: libc::c_int) {
    if ECHO_IS_OFF.load(Ordering::SeqCst) {
        if let Some(original) = ORIGINAL.get() {
            unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, original) };
        }
    }
    // Die of the signal as the shell expects.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}
