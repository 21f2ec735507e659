//! The commands' standard output. A reader that goes away before the output ends
//! (`signpost ctl stats | head`, `signpost lookup < many | head`) ends the command quietly
//! with success, as a Unix tool does; Rust ignores SIGPIPE, so without this the write's EPIPE
//! was a panic. Any other write error ends the command with [`CliError::Write`]'s message and
//! exit code.

use super::CliError;

/// Writes one line to standard output (see the module header); [`outln!`] formats it.
pub(super) fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    if let Err(e) = written {
        drop(out);
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        let e = CliError::Write("stdout".into(), e);
        eprintln!("{e}");
        std::process::exit(e.code().into());
    }
}

/// `println!` for the commands: [`line`] with the arguments formatted.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}
