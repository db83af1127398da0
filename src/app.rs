//! Wiring and lifecycle: turns a parsed command line into running parts and exit codes.
//!
//! This is the only place (with main) where `anyhow` is used, to add the context a person needs
//! ("replaying FILE"). Nothing imports `app`.

use crate::cli::{
    BackupArgs, Cli, Command, DemoArgs, DevicesArgs, DoctorArgs, ExportArgs, GenerateArgs,
    PasswdArgs, ReplayArgs, RestoreArgs, RunArgs, UnlockArgs,
};
use crate::config::Config;
use crate::replay::{self, ReplayOptions};
use crate::store::Store;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Logs go to stderr (journald under systemd), filtered by `RUST_LOG` (default `info`). Under
/// systemd (JOURNAL_STREAM set) journald adds timestamps, so ours are left out.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Replay(args) => run_replay(args),
        Command::Names(args) => run_names(args).map(|()| ExitCode::SUCCESS),
        Command::Run(args) => run_daemon(config, args),
        Command::CheckConfig => {
            let cfg = load_config(config)?;
            print!("{}", cfg.to_toml_string()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => run_export(config, args),
        Command::Generate(args) => run_generate(args),
        Command::Backup(args) => run_backup(config, args),
        Command::Restore(args) => run_restore(config, args),
        Command::Passwd(args) => run_passwd(config, args),
        Command::Unlock(args) => run_unlock(config, args),
        Command::Doctor(args) => run_doctor(config, args),
        Command::Devices(args) => run_devices(config, args),
        Command::Token(args) => run_token(config, args),
        Command::Plan(args) => run_plan(config, args),
        Command::Demo(args) => run_demo(config, args),
        Command::SetupLink(args) => run_setup_link(config, args),
    }
}

/// Prints the first-run setup link (with its one-time code, made now if there is none) while
/// no admin password exists; once one does, says so and fails. The package's post-install
/// script runs it as the lanmeter user and shows the link when it succeeds.
fn run_setup_link(
    config: Option<&Path>,
    args: crate::cli::SetupLinkArgs,
) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    let db = args.db.unwrap_or_else(|| cfg.database_path());
    // No database yet (the daemon has not started): no admin password either.
    if db.is_file() {
        let store = Store::open_existing(&db)?;
        if store.password_hash(crate::auth::Role::Admin)?.is_some() {
            anyhow::bail!(
                "setup is already done: the admin password is set in {}; log in, or reset it with `lanmeter passwd`",
                db.display()
            );
        }
    }
    let code = crate::setup_code::ensure(&db)?;
    let host = crate::setup_code::lan_host(&cfg);
    println!(
        "{}",
        crate::setup_code::link(&cfg, &host, cfg.listen.port(), &code)
    );
    Ok(ExitCode::SUCCESS)
}

fn run_plan(config: Option<&Path>, args: crate::cli::PlanArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    let db = args.db.unwrap_or_else(|| cfg.database_path());
    let store = Store::open_read_only(&db)?;
    let tz = cfg.time_zone();
    let report = store
        .plan_report(&tz, jiff::Timestamp::now())
        .with_context(|| format!("reading the data plan from {}", db.display()))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write!(out, "{report}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_demo(config: Option<&Path>, args: DemoArgs) -> anyhow::Result<ExitCode> {
    use crate::demo::dashboard::{self, DemoOptions};
    use crate::meter::{Meter, MeterConfig, SharedMeter};
    let mut cfg = load_config(config)?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    cfg.anyone_on_lan_may_view |= args.anyone_on_lan_may_view;
    cfg.database = Some(args.db.clone());
    if let Some(dir) = args.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the folder {}", dir.display()))?;
    }
    let password = match &args.admin_password_file {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("reading the admin password from {}", f.display()))?;
            let pw = text.lines().next().unwrap_or("").to_string();
            crate::auth::check_new_password(&pw)?;
            Some(pw)
        }
        None => None,
    };
    // Bound before the build, so a busy port fails in a second, not after the history is written.
    let listener = std::net::TcpListener::bind(cfg.listen).with_context(|| {
        format!(
            "cannot listen on {}: choose another address with --listen",
            cfg.listen
        )
    })?;
    let url_addr = listener.local_addr()?;
    let started = std::time::Instant::now();
    let opts = DemoOptions {
        devices: args.devices,
        days: args.days,
        seed: args.seed,
    };
    let demo = dashboard::build(&args.db, &cfg, &opts, jiff::Timestamp::now().as_second())
        .with_context(|| format!("building the demo household in {}", args.db.display()))?;
    if let Some(pw) = password {
        let phc = crate::auth::hash_password(&pw)?;
        Store::open(&args.db)?
            .set_initial_admin_password(&phc, jiff::Timestamp::now().as_second())?;
    }
    println!(
        "demo household: {} devices, {} days of history in {} ({:.1} s)",
        demo.devices.len(),
        args.days,
        args.db.display(),
        started.elapsed().as_secs_f64()
    );
    if args.build_only {
        return Ok(ExitCode::SUCCESS);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    // A demo has nothing to reload, but SIGHUP must not end it (as it would by default).
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())
        .context("installing signal handlers")?;
    let meter = SharedMeter::new(Meter::new(MeterConfig {
        max_devices: cfg.max_devices,
        gateway: Some(demo.gateway),
        ..MeterConfig::default()
    }));
    let state = crate::web::AppState::new(cfg.clone(), &args.db, Some(meter.clone()))?;
    // The demo's settings page edits the file given with --config.
    if let Some(path) = config {
        state.set_settings(Arc::new(crate::config::settings::Editor::new(
            path.to_path_buf(),
            crate::config::settings::Live::new(cfg.clone()),
        )));
    }
    // A fresh household gets a fresh setup code, never one left beside an older demo database.
    crate::setup_code::remove(&args.db);
    let setup = if args.admin_password_file.is_none() {
        Some(crate::setup_code::ensure(&args.db)?)
    } else {
        None
    };
    state.set_demo(format!(
        "Demo household: synthetic traffic, {} days of history. Nothing here is real.",
        args.days
    ));
    let telemetry = state.telemetry().clone();
    let web = crate::web::spawn(listener, state, stop.clone(), None)
        .context("starting the web server")?;
    let alerts = crate::demo::alerts::spawn(&demo, &cfg, &args.db, args.days, stop.clone())
        .context("starting the demo's alerts")?;
    // The demo's "Pi" listens as on a mirror port: it sees every device talk to the router.
    let watch = crate::placement::Watch::new(
        "demo",
        None,
        Some(crate::placement::Placement {
            promiscuous: true,
            ..Default::default()
        }),
    );
    telemetry.set_visibility(watch.clone());
    let traffic = dashboard::spawn_live(
        demo,
        meter,
        watch,
        args.db.clone(),
        cfg.clone(),
        stop.clone(),
    )
    .context("starting the synthetic traffic")?;
    let host = if url_addr.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        url_addr.ip().to_string()
    };
    if let Some(code) = setup {
        // The one step of `make run`: this link sets the admin password.
        let link = crate::setup_code::link(&cfg, &host, url_addr.port(), &code);
        println!("first-run setup: {link}");
    }
    println!(
        "dashboard: http://{host}:{}/  (Ctrl-C stops)",
        url_addr.port()
    );
    let _ = std::io::stdout().flush();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if hup.swap(false, std::sync::atomic::Ordering::Relaxed) {
            tracing::info!("SIGHUP: the demo has no configuration to reload; still running");
        }
    }
    let _ = web.join();
    let _ = traffic.join();
    let _ = alerts.join();
    Ok(ExitCode::SUCCESS)
}

fn run_backup(config: Option<&Path>, args: BackupArgs) -> anyhow::Result<ExitCode> {
    let db = match args.db {
        Some(db) => db,
        None => load_config(config)?.database_path(),
    };
    // Read-only: a backup copies the file as it is and never upgrades its schema.
    let store = Store::open_read_only_as_is(&db)?;
    store.backup_to(&args.file)?;
    println!(
        "{}: backup of {} written and checked",
        args.file.display(),
        db.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_passwd(config: Option<&Path>, args: PasswdArgs) -> anyhow::Result<ExitCode> {
    use crate::auth::{self, Role};
    let cfg = load_config(config)?;
    let db = args.db.unwrap_or_else(|| cfg.database_path());
    let role = if args.viewer {
        Role::Viewer
    } else {
        Role::Admin
    };
    let password = read_new_password(role)?;
    auth::check_new_password(&password)?;
    let phc = auth::hash_password(&password)?;
    let store = Store::open(&db).with_context(|| format!("opening database {}", db.display()))?;
    let now = jiff::Timestamp::now().as_second();
    let ended = store.set_password(role, &phc, now)?;
    store.audit(&crate::store::auth::AuditEntry {
        at: now,
        actor: "shell",
        client: "shell",
        action: "password set",
        detail: &format!("{role} password; {ended} session(s) logged out"),
    })?;
    println!(
        "{role} password set in {}; {ended} {role} session(s) logged out",
        db.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_restore(config: Option<&Path>, args: RestoreArgs) -> anyhow::Result<ExitCode> {
    use crate::store::{backup, damage};
    let cfg = load_config(config)?;
    let db = args.db.unwrap_or_else(|| cfg.database_path());
    let dir = args.file.clone().unwrap_or_else(|| cfg.backup_dir_path());
    let real = backup::real_path(&db);
    if args.dismiss_damage {
        match damage::resolve(
            &real,
            "dismissed from the shell: the current database is kept",
        )
        .with_context(|| format!("closing the damage record of {}", db.display()))?
        {
            Some(record) => println!(
                "{}: damage dismissed (record kept as {}); old backups are pruned again",
                db.display(),
                record.display()
            ),
            None => println!("{}: no unresolved damage", db.display()),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.list {
        let mut out = std::io::stdout().lock();
        for e in damage::unresolved(&real) {
            writeln!(out, "UNRESOLVED DAMAGE: {}", e.summary())?;
        }
        let all = backup::list(&dir)?;
        if all.is_empty() {
            writeln!(out, "no backups in {}", dir.display())?;
        }
        let newest_good = all
            .iter()
            .find(|b| !b.after_damage && b.verdict.is_ok())
            .map(|b| b.path.clone());
        for b in &all {
            let verdict = match &b.verdict {
                Ok(()) => "quick_check ok".to_string(),
                Err(e) => format!("FAILS: {e}"),
            };
            let note = if b.after_damage {
                "  (written after the damage: the fresh history only)"
            } else if Some(&b.path) == newest_good.as_ref() {
                "  <- newest good: `lanmeter restore --latest-good`"
            } else {
                ""
            };
            writeln!(
                out,
                "{}\t{}\t{:.1} MB\t{verdict}{note}",
                b.date,
                b.path.display(),
                b.size as f64 / 1e6
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let file = if args.latest_good {
        backup::newest_good(&dir)?
    } else {
        dir
    };
    let kept = backup::restore(&db, &file)?;
    println!("{}: restored from {}", db.display(), file.display());
    if let Some(kept) = kept {
        println!("the previous database was kept as {}", kept.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// From a terminal: asked twice with echo off. Otherwise: the first line of standard input
/// (for scripts and provisioning), without its line ending.
fn read_new_password(role: crate::auth::Role) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = prompt_hidden(&format!("New {role} password: "))?;
    let second = prompt_hidden("Same password again: ")?;
    if first != second {
        return Err(crate::auth::AuthError::Mismatch.into());
    }
    Ok(first)
}

fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    use std::io::BufRead;
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).context("reading the terminal settings")?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    eprint!("{prompt}");
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("turning off terminal echo")?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // Echo comes back even when reading failed, so the shell is never left silent.
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    read.context("reading the password")?;
    restored.context("restoring terminal echo")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn run_unlock(config: Option<&Path>, args: UnlockArgs) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config)?;
    let db = args.db.unwrap_or_else(|| cfg.database_path());
    let store = Store::open_existing(&db)?;
    let addr = args.addr.map(|a| a.to_canonical().to_string());
    let cleared = store.unlock(addr.as_deref())?;
    store.audit(&crate::store::auth::AuditEntry {
        at: jiff::Timestamp::now().as_second(),
        actor: "shell",
        client: "shell",
        action: "unlock",
        detail: &addr.clone().unwrap_or_else(|| "all addresses".into()),
    })?;
    match (cleared.is_empty(), addr) {
        (true, Some(a)) => println!("{a} was not locked (its failed-login count is cleared)"),
        (true, None) => println!("no address was locked"),
        (false, _) => println!("unlocked: {}", cleared.join(", ")),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_token(config: Option<&Path>, args: crate::cli::TokenArgs) -> anyhow::Result<ExitCode> {
    use crate::cli::TokenAction;
    let cfg = load_config(config)?;
    let db = args.db.unwrap_or_else(|| cfg.database_path());
    // Listing only reads: it must not upgrade the schema.
    let store = match args.action {
        TokenAction::List => Store::open_read_only(&db),
        _ => Store::open(&db),
    }
    .with_context(|| format!("opening database {}", db.display()))?;
    let now = jiff::Timestamp::now().as_second();
    let audit = |action: &str, detail: &str| {
        store.audit(&crate::store::auth::AuditEntry {
            at: now,
            actor: "shell",
            client: "shell",
            action,
            detail,
        })
    };
    let time =
        |t: i64| jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |t| t.to_string());
    match args.action {
        TokenAction::Create { name, role } => {
            let name = crate::auth::token_name(&name)?;
            let role = crate::auth::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("role must be viewer or admin"))?;
            let (secret, digest, prefix) = crate::auth::new_api_token()?;
            let row = store
                .create_token(&crate::store::tokens::NewToken {
                    name,
                    role,
                    digest: &digest,
                    prefix: &prefix,
                    now,
                })?
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} tokens exist already (revoked ones count too)",
                        crate::store::tokens::TOKENS_MAX
                    )
                })?;
            audit(
                "token created",
                &format!("{} ({}, {})", row.name, row.role.as_str(), row.prefix),
            )?;
            eprintln!(
                "token {} ({}, {}) created; its secret is shown only now:",
                row.id,
                row.name,
                row.role.as_str()
            );
            println!("{secret}");
        }
        TokenAction::List => {
            let rows = store.list_tokens()?;
            if rows.is_empty() {
                println!("no API tokens; create one with `lanmeter token create NAME`");
            }
            for t in rows {
                let state = match (t.revoked_at, t.last_used_at) {
                    (Some(r), _) => format!("revoked {}", time(r)),
                    (None, Some(u)) => format!("last used {}", time(u)),
                    (None, None) => "never used".to_string(),
                };
                println!(
                    "{}\t{}\t{}\t{}…\tcreated {}\t{}",
                    t.id,
                    t.name,
                    t.role.as_str(),
                    t.prefix,
                    time(t.created_at),
                    state
                );
            }
        }
        TokenAction::Revoke { id } => {
            let row = store.revoke_token(id, now)?.ok_or_else(|| {
                anyhow::anyhow!("there is no token with id {id}: see `lanmeter token list`")
            })?;
            audit("token revoked", &format!("{} ({})", row.name, row.prefix))?;
            println!("revoked token {} ({})", row.id, row.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn run_doctor(config: Option<&Path>, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    use crate::system::doctor;
    let cfg = load_config(config)?;
    let report = doctor::run(
        &cfg,
        &doctor::DoctorOptions {
            interface: args.interface,
            listen: std::time::Duration::from_secs(args.listen_secs),
            fix: args.fix,
        },
    );
    print!("{}", report.render());
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn run_devices(config: Option<&Path>, args: DevicesArgs) -> anyhow::Result<ExitCode> {
    use crate::discovery::report;
    let cfg = load_config(config)?;
    let db = args.db.unwrap_or_else(|| cfg.database_path());
    let store = Store::open_read_only(&db)?;
    let devices = store.list_devices_with_presence()?;
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let window = (cfg.presence_window_secs as i64).saturating_mul(1_000_000_000);
    let out = if args.json {
        report::to_json(&devices, now, window) + "\n"
    } else {
        report::to_table(&devices, now, window)
    };
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing the devices list")?;
    Ok(ExitCode::SUCCESS)
}

fn run_generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    use crate::demo;
    if let Some(macs) = args.flood_macs {
        demo::write_mac_flood_pcap(&args.file, args.seed, args.frames, macs)?;
        println!(
            "{}: {} frames from {} random source MACs",
            args.file.display(),
            args.frames,
            macs
        );
        return Ok(ExitCode::SUCCESS);
    }
    let opts = demo::GenOptions {
        seed: args.seed,
        frames: args.frames,
        duration_secs: args.duration_secs,
        devices: args.devices,
        snaplen: args.snaplen,
        handshake_percent: args.handshakes,
        ..Default::default()
    };
    let expected = demo::write_household_pcap(&args.file, &opts)?;
    if let Some(path) = &args.expected {
        let json = serde_json::to_string_pretty(&expected.to_json())?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing expected totals to {}", path.display()))?;
    }
    println!(
        "{}: {} frames, {} MACs, gateway {}",
        args.file.display(),
        expected.frames,
        expected.devices.len(),
        expected.gateway
    );
    Ok(ExitCode::SUCCESS)
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

fn run_daemon(config: Option<&Path>, args: RunArgs) -> anyhow::Result<ExitCode> {
    // The same reading at start and on every SIGHUP: file, environment, command line.
    let path = config.map(Path::to_path_buf);
    let load = move || -> anyhow::Result<Config> {
        let mut cfg = load_config(path.as_deref())?;
        if args.interface.is_some() {
            cfg.interface = args.interface.clone();
        }
        if args.db.is_some() {
            cfg.database = args.db.clone();
        }
        Ok(cfg)
    };
    let cfg = load()?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    // SIGHUP reloads (issue 25: its default action ended monitoring with an exit systemd did
    // not restart).
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())
        .context("installing signal handlers")?;
    let file = crate::config::settings::file_in_use(config);
    let inputs = crate::daemon::Inputs::live(&cfg)?;
    crate::daemon::run(
        cfg,
        inputs,
        file,
        stop,
        Some(crate::run::reload::Reload {
            requested: reload,
            load: Box::new(load),
        }),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn run_export(config: Option<&Path>, args: ExportArgs) -> anyhow::Result<ExitCode> {
    use crate::store::export;
    let cfg = load_config(config)?;
    let tz = cfg.time_zone();
    let db = args.db.unwrap_or_else(|| cfg.database_path());
    // Read-only: a mistyped --db must be an error, not a new empty database, and an export
    // never upgrades the schema.
    let store = Store::open_read_only(&db)?;
    let from = args.from.map(|s| export::parse_time(&s, &tz)).transpose()?;
    let to = args.to.map(|s| export::parse_time(&s, &tz)).transpose()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    export::export(
        &store,
        args.period,
        from,
        to,
        args.device,
        &tz,
        args.format,
        &mut out,
    )?;
    out.flush().context("writing the export")?;
    Ok(ExitCode::SUCCESS)
}

fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if args.survey {
        return run_survey_replay(args);
    }
    let mut opts = ReplayOptions {
        lan: args.lan.clone(),
        gateway: args.gateway,
        max_devices: args.max_devices,
        passive_latency: !args.no_passive_latency,
        remote_endpoints: args.endpoints,
        presence_window_ns: (Config::default().presence_window_secs as i64)
            .saturating_mul(1_000_000_000),
    };
    let window_ns = opts.presence_window_ns;
    // Remotes are counted only against a known gateway: find it first (a pipe is spooled to
    // a file so that it can be read twice, as for --db).
    if args.endpoints && opts.gateway.is_none() {
        if !crate::capture::file::is_rereadable(&args.file) {
            let copy = spool(&args.file)?;
            let mut args = args;
            args.file = copy.path().to_owned();
            return run_replay(args);
        }
        opts.gateway = replay::infer_gateway(&args.file, &opts)
            .with_context(|| format!("replaying {}", args.file.display()))?;
    }
    let mut result = match &args.db {
        None => replay::replay(&args.file, &opts, |_, _| {
            Ok::<(), std::convert::Infallible>(())
        })
        .with_context(|| format!("replaying {}", args.file.display()))?
        .unwrap_or_else(|e| match e {}),
        Some(db) => {
            // Without --gateway replay reads the file twice, and a pipe can be read only once:
            // keep a copy of it for the two passes.
            if opts.gateway.is_none() && !crate::capture::file::is_rereadable(&args.file) {
                let copy = spool(&args.file)?;
                let mut args = args;
                args.file = copy.path().to_owned();
                return run_replay(args);
            }
            replay::replay_into(&args.file, &mut opts, db)?
        }
    };
    crate::run::discovery::fill_vendors(
        &crate::discovery::vendor::OuiDb::system(),
        &mut result.discovered,
        &mut std::collections::HashSet::new(),
    );
    if let Some(db) = &args.db {
        // Devices exist by now (the flusher wrote them); discovery adds what it learned.
        let mut store =
            Store::open(db).with_context(|| format!("opening database {}", db.display()))?;
        store
            .write_discovery(&result.discovered, window_ns, crate::run::discovery::guess)
            .with_context(|| format!("writing devices to {}", db.display()))?;
    }
    if !result.stats.skipped_links.is_empty() {
        eprintln!(
            "lanmeter: skipped records of interfaces accounting cannot read: {} (accounting reads Ethernet and Linux cooked frames; 802.11 goes to `lanmeter replay --survey`)",
            result.stats.skipped_summary()
        );
    }
    if result.other.entries_evicted > 0 {
        tracing::warn!(
            entries = result.other.entries_evicted,
            bytes = result.other.counts.bytes_sent,
            "the per-minute device bound was reached; the least active MACs were folded into 'other' (raise --max-devices if this is a real network)"
        );
    }
    let out = if args.json {
        replay::to_json(&result) + "\n"
    } else {
        replay::to_table(&result)
    };
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing the replay output")?;
    if let Some(e) = result.truncated {
        eprintln!("lanmeter: error: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A temporary copy of a non-seekable input (standard input, a FIFO), removed when dropped.
struct Spooled(std::path::PathBuf);

impl Spooled {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn spool(input: &Path) -> anyhow::Result<Spooled> {
    let mut buf = [0u8; 8];
    getrandom::fill(&mut buf)
        .map_err(|e| anyhow::anyhow!("choosing a temporary file name: {e}"))?;
    let path = std::env::temp_dir().join(format!(
        "lanmeter-replay-{:016x}.cap",
        u64::from_le_bytes(buf)
    ));
    let spooled = Spooled(path);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(spooled.path())
        .with_context(|| format!("creating {}", spooled.path().display()))?;
    let mut src = crate::capture::file::open_input(input)
        .with_context(|| format!("reading {}", input.display()))?;
    std::io::copy(&mut src, &mut out).with_context(|| {
        format!(
            "copying {} to {} (replay --db without --gateway reads its input twice)",
            input.display(),
            spooled.path().display()
        )
    })?;
    Ok(spooled)
}

/// `replay --survey`: an 802.11 capture through the survey decoder into a collector, printed as
/// JSON (read back from the database when `--db` is given, so the stored form is what prints).
fn run_survey_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    use crate::capture::file::{FileError, WifiFileSource};
    use crate::survey::Collector;
    let mut src = WifiFileSource::open(&args.file)
        .with_context(|| format!("surveying {}", args.file.display()))?;
    let mut collector = Collector::new();
    let mut skipped = String::new();
    let truncated = match src.run(&mut collector) {
        Ok(stats) => {
            skipped = stats.skipped_summary();
            None
        }
        Err(e) if e.partial_records().is_some() => Some(e),
        Err(e) => {
            return Err(e).with_context(|| format!("surveying {}", args.file.display()));
        }
    };
    if !skipped.is_empty() {
        eprintln!("lanmeter: skipped records that are not 802.11: {skipped}");
    }
    if collector.refused > 0 {
        tracing::warn!(
            refused = collector.refused,
            "more access points or clients than the survey keeps: the excess was dropped (a beacon or probe flood?)"
        );
    }
    if collector.refused_cells > 0 {
        tracing::warn!(
            refused = collector.refused_cells,
            kept = crate::survey::MAX_CHANNEL_CELLS,
            "more channel minutes than one survey replay keeps (a day of hopping over 64 channels): frames after that are missing from frames_heard; split the capture with editcap -i 86400"
        );
    }
    let survey = match &args.db {
        None => collector.survey(),
        Some(db) => {
            let mut store =
                Store::open(db).with_context(|| format!("opening database {}", db.display()))?;
            store
                .write_survey(&collector)
                .with_context(|| format!("writing the survey to {}", db.display()))?;
            crate::store::survey::survey(&store, None, None)
                .with_context(|| format!("reading the survey back from {}", db.display()))?
        }
    };
    let json = survey.to_json(args.ssid.as_deref().map(str::as_bytes));
    // Serialising plain strings and numbers cannot fail.
    let out = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("writing the survey output")?;
    match truncated {
        // Every complete record was read: a survey of what the file holds is still the answer.
        Some(e @ FileError::Truncated { .. }) => eprintln!("lanmeter: warning: {e}"),
        Some(e) => {
            eprintln!("lanmeter: error: {e}");
            return Ok(ExitCode::FAILURE);
        }
        None => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `lanmeter names FILE`: the names parsers over a capture file, as the live names capture
/// would see it (every record is shown to them; the kernel filter is not applied).
fn run_names(args: crate::cli::NamesArgs) -> anyhow::Result<()> {
    use crate::names::{Event, Extractor, services, table::Table};
    struct Discard;
    impl crate::capture::FrameSink for Discard {
        fn ingest(&mut self, _: &[crate::capture::Frame]) {}
    }
    let mut source = crate::capture::file::FileSource::open(&args.file)?;
    let mut extractor = Extractor::default();
    let mut events: Vec<Event> = Vec::new();
    source.run_with_raw(
        &mut Discard,
        |_| {},
        |link, ts, data| {
            extractor.frame(link, ts, data, &mut events);
        },
    )?;
    let mut table = Table::new(usize::MAX);
    for e in &events {
        for l in e.learned() {
            table.add(l);
        }
    }
    let (mut rows, _) = table.take();
    rows.sort_by_key(|r| r.0);
    let learned: Vec<serde_json::Value> = rows
        .iter()
        .map(|((mac, ip), e)| {
            serde_json::json!({
                "device": mac,
                "remote_ip": ip.to_string(),
                "name": e.name,
                "service": services::service_of(&e.name),
                "source": e.source.as_str(),
            })
        })
        .collect();
    if args.json {
        let (dns, hellos): (Vec<&Event>, Vec<&Event>) =
            events.iter().partition(|e| matches!(e, Event::Dns { .. }));
        println!(
            "{}",
            serde_json::json!({ "dns": dns, "hellos": hellos, "learned": learned })
        );
        return Ok(());
    }
    for e in &events {
        match e {
            Event::Dns { response, .. } => println!(
                "dns {} -> {}",
                response.query,
                response
                    .addresses
                    .iter()
                    .map(|(a, _)| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Event::Hello {
                server,
                name,
                source,
                ..
            } => println!("{} {name} ({server})", source.as_str()),
        }
    }
    for l in learned {
        println!("learned {l}");
    }
    Ok(())
}
