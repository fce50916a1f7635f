"""``qwatch``: every operation of QualityWatch from one command."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from services.baseline_cli import baseline_app
from services.deadletters_cli import deadletters_app
from services.keys_cli import keys_app
from services.queues_cli import queues_app
from shared.apikeys import KeyFileError

if TYPE_CHECKING:
    from shared.settings import KafkaSettings

app = typer.Typer(
    name="qwatch",
    help="QualityWatch: streaming quality monitoring for content moderation.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(shown: bool) -> None:
    if shown:
        from importlib.metadata import version

        typer.echo(f"qwatch (qualitywatch) {version('qualitywatch')}")
        raise typer.Exit()


@app.callback()
def _options(
    _: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """QualityWatch: streaming quality monitoring for content moderation."""


app.add_typer(keys_app)
app.add_typer(queues_app)
app.add_typer(baseline_app)
app.add_typer(deadletters_app)


# exit status of a command that cannot reach what it needs (the broker), as for bad settings
UNREACHABLE = 2


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"qwatch: {message}", err=True)
    return typer.Exit(code)


@contextlib.contextmanager
def _kafka_refusals(quiet: bool = False) -> Iterator[None]:
    """The expected ways a command that needs the broker fails end it with one line, not a
    traceback: no broker answers at the address (exit 2, the address named), or the cluster
    refuses to create a topic, e.g. more replicas than brokers (exit 1). ``quiet``: a
    short command that reports its failure in that one line, without aiokafka's own error
    logs of each refused connection (never for a service: its logs must keep them)."""
    from aiokafka.errors import KafkaConnectionError

    from shared.kafka import BrokerUnreachableError, TopicCreationError, quiet_client_logs
    from shared.settings import KafkaSettings

    try:
        with quiet_client_logs() if quiet else contextlib.nullcontext():
            yield
    except BrokerUnreachableError as exc:
        raise _fail(
            f"cannot reach the Kafka broker at {exc.bootstrap} (QW_KAFKA_BOOTSTRAP): nothing "
            f"answered within {exc.timeout:g} s (QW_KAFKA_CONNECT_TIMEOUT_S); is a broker "
            "running there? deploy/local/kafka.sh start starts one on 127.0.0.1 "
            "(QW_KAFKA_PORT), and qwatch demo starts it itself when QW_KAFKA_BOOTSTRAP is unset",
            UNREACHABLE,
        ) from None
    except KafkaConnectionError as exc:  # the broker went away after it first answered
        bootstrap = KafkaSettings().bootstrap
        raise _fail(
            f"cannot reach the Kafka broker at {bootstrap} (QW_KAFKA_BOOTSTRAP): {exc}",
            UNREACHABLE,
        ) from None
    except TopicCreationError as exc:
        raise _fail(str(exc), 1) from None


def _broker_answers(settings: KafkaSettings) -> None:
    """Return once the broker answers; else end the command (exit 2, the address named)."""
    from shared.kafka import wait_for_broker

    def waiting(left: float) -> None:
        typer.echo(
            f"qwatch: no answer yet from the Kafka broker at {settings.bootstrap} "
            f"(QW_KAFKA_BOOTSTRAP); waiting up to {left:.0f} s more (QW_KAFKA_CONNECT_TIMEOUT_S)",
            err=True,
        )

    with _kafka_refusals():
        asyncio.run(wait_for_broker(settings, waiting=waiting))


@app.command()
def demo(
    hours: Annotated[float, typer.Option(help="simulated hours to play")] = 34.0,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 600.0,
    seed: Annotated[int, typer.Option(help="simulation seed")] = 7,
    drift_queue: Annotated[str | None, typer.Option(help="queue that drifts")] = None,
    drift_at: Annotated[float, typer.Option(help="simulated hour the drift starts")] = 22.0,
    drift_delta: Annotated[
        float, typer.Option(help="accuracy change at the drifting site (or queue), e.g. -0.24")
    ] = -0.24,
    drift_site: Annotated[
        str, typer.Option(help="the site that drifts; 'all' for the whole queue")
    ] = "dublin",
    keep_kafka: Annotated[bool, typer.Option(help="leave a broker we started running")] = False,
    alertmanager: Annotated[
        bool,
        typer.Option(
            help="also run the real Prometheus and Alertmanager (Debian's packages; the "
            "shipped rules and routing tree, every receiver a webhook to the demo) on "
            "127.0.0.1:9090 and :9093"
        ),
    ] = False,
    ingest_port: Annotated[
        int, typer.Option(envvar="QW_DEMO_INGEST_PORT", help="ingest's port on 127.0.0.1")
    ] = 8001,
    alerts_port: Annotated[
        int,
        typer.Option(
            envvar="QW_DEMO_ALERTS_PORT", help="the alerts service's port (the wall, the API)"
        ),
    ] = 8002,
    receiver_port: Annotated[
        int,
        typer.Option(envvar="QW_DEMO_RECEIVER_PORT", help="the demo's webhook receiver's port"),
    ] = 8099,
) -> None:
    """Run the whole pipeline locally with simulated traffic and a drift.

    Its three ports on 127.0.0.1 must be free (else exit 2, naming each): see the options."""
    from services.demo.orchestrator import DemoOptions, local_kafka, run_demo
    from shared.runtime import setup_logging

    setup_logging("WARNING")
    if os.environ.get("QW_KAFKA_BOOTSTRAP"):  # set but empty is unset, as in the settings
        # a broker named by the user is used, never replaced by a local one
        _broker_answers(local_kafka())
    opts = DemoOptions(
        hours=hours, speed=speed, seed=seed, drift_queue=drift_queue, drift_at_h=drift_at,
        drift_delta=drift_delta, keep_kafka=keep_kafka, alertmanager=alertmanager,
        drift_site=None if drift_site == "all" else drift_site, ingest_port=ingest_port,
        alerts_port=alerts_port, receiver_port=receiver_port,
    )  # fmt: skip
    try:
        code = asyncio.run(run_demo(opts))
    except subprocess.CalledProcessError as exc:
        raise _fail(
            f"could not start a local Kafka broker: deploy/local/kafka.sh {exc.cmd[-1]} exited "
            f"with {exc.returncode} (its messages are above; or set QW_KAFKA_BOOTSTRAP to a "
            "running broker)",
            UNREACHABLE,
        ) from None
    raise typer.Exit(code)


def check_settings() -> None:
    """Build every service's settings from the environment, as each service will, and read
    the API key file as the HTTP services will: a variable one of them refuses, or a key
    file they could not read, ends the command here (``main``: exit 2, one line naming it),
    before anything starts. (A key file that does not exist is no keys, as for them.)"""
    from services.alerts.settings import AlertsSettings
    from services.ingest.settings import IngestSettings
    from services.scorer.settings import ScorerSettings
    from shared.apikeys import KeyStore
    from shared.settings import AuthSettings

    for cls in (IngestSettings, ScorerSettings, AlertsSettings):
        cls()
    KeyStore(AuthSettings().keys_file)


@app.command()
def run() -> None:
    """Run ingest, scorer and alerts together on this machine until Ctrl-C or SIGTERM.

    Each service is a child process configured by the same environment; logs go to
    $QW_STATE_DIR/run/logs/ (default var/run/logs/). Production deployments run the three
    commands separately instead.
    """
    import signal
    import time

    from services.demo.orchestrator import ServiceExitError, Services
    from shared.settings import KafkaSettings, local_state_dir

    # a setting a service would refuse is refused here, not after "running" was printed
    check_settings()
    _broker_answers(KafkaSettings())
    log_dir = local_state_dir() / "run" / "logs"
    services = Services({}, log_dir)
    stop: str | None = None

    def _stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = signal.Signals(signum).name

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    for name in ("ingest", "scorer", "alerts"):
        services.start(name)
    typer.echo(f"ingest, scorer and alerts running; logs in {log_dir}; Ctrl-C stops them")
    try:
        while stop is None:
            services.check()
            time.sleep(0.5)
    except ServiceExitError as exc:  # a service ended: its log's last line says why
        raise _fail(
            f"service {exc.name} exited with {exc.code} ({exc.last_line}); logs in {log_dir}", 1
        ) from None
    finally:
        if stop is not None:
            typer.echo(f"{stop} received: stopping ingest, scorer and alerts", err=True)
        services.stop()
        if stop is not None:
            typer.echo("stopped", err=True)


@app.command()
def ingest() -> None:
    """Run the ingest service (HTTP API and raw-topic validator)."""
    from services.ingest.main import run
    from services.ingest.settings import IngestSettings
    from shared.runtime import run_async, run_until_signal, setup_logging

    setup_logging()
    settings = IngestSettings()
    with _kafka_refusals():
        run_async(run_until_signal(lambda stop: run(settings, stop)))


def _scorer_logging(loglevel: str) -> None:
    """The worker's own lines (ready, rebalances: services/scorer/app.py) at INFO on
    standard error, in the format of ingest's and alerts' logs. The Faust worker takes the
    root logger over at QW_LOG_LEVEL (default warning), which would hide them; with
    ``debug`` its DEBUG lines show too. (Only the worker's module: the store's, a Faust
    service, logs Faust's own INFO lines, which QW_LOG_LEVEL=info shows.)"""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    own = logging.getLogger("services.scorer.app")
    own.addHandler(handler)
    own.propagate = False  # (not twice while the root logger is still ours)
    own.setLevel(logging.DEBUG if loglevel == "debug" else logging.INFO)


@app.command()
def scorer() -> None:
    """Run the scorer (a Faust worker)."""
    from services.scorer.app import run_worker
    from services.scorer.settings import ScorerSettings
    from shared.kafka import ensure_topics, wait_for_broker
    from shared.runtime import setup_logging

    setup_logging()
    loglevel = (os.environ.get("QW_LOG_LEVEL") or "warning").lower()
    _scorer_logging(loglevel)
    settings = ScorerSettings()

    async def prepare() -> str | None:
        cluster_id = await wait_for_broker(settings.kafka)
        await ensure_topics(settings.kafka)
        return cluster_id

    with _kafka_refusals():
        cluster_id = asyncio.run(prepare())
    run_worker(settings, loglevel=loglevel, cluster_id=cluster_id)


@app.command()
def alerts() -> None:
    """Run the alerts service (metrics, webhooks, health API)."""
    from services.alerts.main import run
    from services.alerts.settings import AlertsSettings
    from shared.runtime import run_async, run_until_signal, setup_logging

    setup_logging()
    settings = AlertsSettings()
    with _kafka_refusals():
        run_async(run_until_signal(lambda stop: run(settings, stop)))


@app.command()
def simulate(
    hours: Annotated[float, typer.Option(help="simulated hours", min=0.01, max=24 * 400)] = 24.0,
    speed: Annotated[
        float, typer.Option(help="simulated s per real s; 0 = flat out", min=0.0)
    ] = 600.0,
    seed: Annotated[int, typer.Option()] = 7,
    queues: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    decisions_per_hour: Annotated[float, typer.Option(help="per queue", min=0.0)] = 1000.0,
    drift: Annotated[
        list[str] | None,
        typer.Option(help="QUEUE:HOUR:DELTA, e.g. spam-en:12:-0.05 (repeatable)"),
    ] = None,
    invalid_every: Annotated[
        int, typer.Option(help="inject a malformed event every N (0: none)", min=0)
    ] = 0,
    admit: Annotated[
        bool, typer.Option(help="admit the simulated queues first (QW_INGEST_QUEUES=admitted)")
    ] = True,
) -> None:
    """Produce simulated decisions and verdicts to the raw topics."""
    from datetime import UTC, datetime, timedelta

    from services.simulator.model import Drift, SimConfig, queue_profiles
    from services.simulator.run import play
    from shared.settings import KafkaSettings

    drifts = []
    for spec in drift or []:
        try:
            q, h, d = spec.rsplit(":", 2)
            drifts.append(Drift(queue_id=q, at_s=float(h) * 3600, delta=float(d)))
        except ValueError as exc:
            raise typer.BadParameter(f"--drift {spec!r}: expected QUEUE:HOUR:DELTA") from exc
    names = {p.queue_id for p in queue_profiles(SimConfig(seed=seed, queues=queues))}
    for one in drifts:
        if one.queue_id not in names:
            raise typer.BadParameter(
                f"--drift {one.queue_id!r}: not a simulated queue (with --seed {seed} "
                f"--queues {queues}: {', '.join(sorted(names)[:5])}, ...)"
            )
        if not -1.0 <= one.delta <= 1.0 or one.at_s < 0:
            raise typer.BadParameter(f"--drift {one.queue_id}: HOUR >= 0 and DELTA in [-1, 1]")
    # simulated time ends about now: ingest refuses event times in the future
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)
    cfg = SimConfig(
        seed=seed, queues=queues, decisions_per_hour=decisions_per_hour, drifts=tuple(drifts),
        start=start,
    )  # fmt: skip
    kafka = KafkaSettings()
    _broker_answers(kafka)
    with _kafka_refusals():
        prog = asyncio.run(
            play(
                cfg,
                kafka,
                duration_s=hours * 3600,
                speed=speed,
                invalid_every=invalid_every,
                admit=admit,
            )
        )
    typer.echo(
        f"sent {prog.decisions} decisions, {prog.verdicts} verdicts, {prog.invalid} malformed"
    )


@app.command()
def backfill(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="exports of past decisions and verdicts: .csv, .ndjson/.jsonl (either "
            "gzipped: .gz), .parquet"
        ),
    ],
    restart: Annotated[
        bool, typer.Option(help="ignore the checkpoints: load every file from its first row")
    ] = False,
    max_rejects: Annotated[
        int, typer.Option(min=0, help="stop after this many invalid rows in one file")
    ] = 1000,
    rate: Annotated[
        float, typer.Option(help="rows per second at most; 0 = as fast as the broker takes")
    ] = 0.0,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="where the checkpoints and the rejected rows are kept (default: "
            "$QW_STATE_DIR/backfill, else var/backfill in the project; not the working "
            "directory, so the same command resumes from anywhere)"
        ),
    ] = None,
) -> None:
    """Load past decisions and verdicts into the raw topics (resumable: Ctrl-C, then the
    same command), so baselines are learned from history. docs/operations.md, "Backfill"."""
    from services.backfill import BackfillError, RichReporter, preflight, run_backfill, to_send
    from services.ingest.admission import QueuePolicy
    from services.ingest.settings import IngestSettings
    from shared.analysis.errors import InputError
    from shared.settings import KafkaSettings, local_state_dir

    if not (math.isfinite(rate) and rate >= 0):
        raise _fail(f"--rate must be a number of rows per second >= 0, got {rate}", 2)
    for f in files:  # every file readable before the broker is asked anything
        try:
            preflight(f)
        except BackfillError as exc:
            raise _fail(str(exc), exc.code) from None
    ingest = IngestSettings()  # rows are checked as ingest will check them: times, queues
    max_age_days = ingest.max_age_days
    folder = (state_dir or local_state_dir() / "backfill").resolve()  # (paths said in full)
    queues = QueuePolicy(ingest.queues, ingest.queue_patterns(), ingest.queues_open_max)
    kafka = KafkaSettings()
    if any(to_send(f, folder, kafka, restart=restart) for f in files):
        _broker_answers(kafka)  # (a rerun after a complete load says so without the broker)
    reporter = RichReporter(restart=restart)
    try:
        with _kafka_refusals():
            code = asyncio.run(run_backfill(
                files, kafka, state_dir=folder, restart=restart, max_rejects=max_rejects,
                max_age_days=max_age_days, rate=rate, reporter=reporter, queues=queues,
                ingest_group=ingest.consumer_group,
            ))  # fmt: skip
    except (BackfillError, InputError) as exc:
        raise _fail(str(exc), getattr(exc, "code", 1)) from None
    finally:
        reporter.close()
    raise typer.Exit(code)


@app.command()
def analyze(
    file: Annotated[
        Path,
        typer.Argument(help="QA verdicts: .csv, .ndjson/.jsonl (either gzipped: .gz) or .parquet"),
    ],
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv|ndjson|parquet (default: by extension)")
    ] = None,
    time_column: Annotated[str, typer.Option(help="timestamp column (ISO 8601)")] = "reviewed_at",
    assume_utc: Annotated[bool, typer.Option(help="read naive timestamps as UTC")] = False,
    all_samples: Annotated[
        bool, typer.Option(help="count every sample_type, not only random samples")
    ] = False,
    period: Annotated[str, typer.Option(help="subgroup period: 1h, 4h, 1d, 1w...")] = "1d",
    tz: Annotated[str, typer.Option(help="time zone of the periods, e.g. Asia/Manila")] = "UTC",
    chart: Annotated[
        str, typer.Option(help="p | np | laney | ewma | cusum | bernoulli-cusum")
    ] = "p",
    by: Annotated[str, typer.Option(help="one chart per queue | site | policy")] = "queue",
    only: Annotated[
        list[str] | None, typer.Option(help="chart only this group (repeatable)")
    ] = None,
    baseline_rate: Annotated[
        float | None, typer.Option(help="standard given: the in-control error rate P")
    ] = None,
    phase1: Annotated[
        int | None, typer.Option(help="Phase I baseline from the first K subgroups")
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="drop subgroups from the baseline: 15 | 15,23 | 3-5 | GROUP:15"),
    ] = None,
    rules: Annotated[
        str | None, typer.Option(help="run rules on p/np/laney: weco (default) | nelson | none")
    ] = None,
    nsigmas: Annotated[
        float | None, typer.Option("--L", help="limit width in sigmas (3; EWMA 2.814)")
    ] = None,
    lam: Annotated[float | None, typer.Option("--lam", help="EWMA lambda (0.1)")] = None,
    k: Annotated[float | None, typer.Option("--k", help="CUSUM reference value (0.5)")] = None,
    h: Annotated[
        float | None, typer.Option("--h", help="CUSUM decision interval (5; Bernoulli: chosen)")
    ] = None,
    p1: Annotated[
        float | None,
        typer.Option(
            "--p1", help="Bernoulli CUSUM: error rate to detect (2 p0, or (1 + p0)/2 if smaller)"
        ),
    ] = None,
    arl0: Annotated[
        float | None,
        typer.Option("--arl0", help="Bernoulli CUSUM: in-control ARL in verdicts (1000)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="write the chart: .png, .svg, .pdf or .html")
    ] = None,
) -> None:
    """Control charts of a file of QA verdicts, per queue: a QA manager's deep dive."""
    from shared.analysis.cli import analyze_command

    analyze_command(
        file, file_format=file_format, time_column=time_column, assume_utc=assume_utc,
        all_samples=all_samples, period=period, tz=tz, chart=chart, by=by, only=only,
        baseline_rate=baseline_rate, phase1=phase1, exclude=exclude, rules=rules,
        nsigmas=nsigmas, lam=lam, k=k, h=h, p1=p1, arl0=arl0, as_json=as_json, plot=plot,
    )  # fmt: skip


@app.command("config")
def config_reference() -> None:
    """Print every setting with its environment variable, default and meaning.

    The environment's values are checked first, as the services would read them: an
    invalid one ends it (exit 2, one line naming the variable). What it prints does not
    depend on the environment."""
    from services.config_doc import render

    check_settings()
    typer.echo(render(), nl=False)


def settings_error(exc: ValidationError) -> str:
    """A settings class that refused its environment, as one line naming the variables."""
    from services.config_doc import SECTIONS

    prefixes = {cls.__name__: str(cls.model_config.get("env_prefix", "")) for _, cls in SECTIONS}
    prefix = prefixes.get(exc.title, "")
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        loc = [str(x) for x in err["loc"]]
        if loc and loc[0].startswith("QW_"):  # a setting read under its own name (an alias)
            var = "_".join(loc).upper()
        else:
            var = (prefix + "_".join(loc)).upper() if loc and prefix else ""
        if not var or msg.startswith(var):  # the message names it already
            parts.append(msg)
        # never the value of a secret, nor of a URL (its user information or query may
        # hold a token: the message quotes it without them, services/alerts/webhook_policy)
        elif any(w in var for w in ("SECRET", "PASSWORD", "URL")):
            parts.append(f"{var}: {msg}")
        else:
            parts.append(f"{var}={err.get('input')!r}: {msg}")
    return "invalid settings: " + "; ".join(parts) + " (see docs/configuration.md)"


def unparsable_setting(exc: SettingsError) -> str:
    """A list or map setting that is not JSON, as one line naming its variable."""
    from services.config_doc import NESTED, SECTIONS, env_names

    match = re.search(r'field "(\w+)"', str(exc))
    names = [
        env
        for _, cls in SECTIONS
        for env, field in zip(
            env_names(cls), [n for n in cls.model_fields if n not in NESTED], strict=True
        )
        if match and field == match.group(1)
    ]
    where = " or ".join(names) if names else "a setting"
    if names and all(os.environ.get(name) == "" for name in names):
        return (
            f"invalid settings: {where} is set but empty, which this setting does not read "
            "as unset: give a JSON list (`[]` for none), or leave it out (see "
            "docs/configuration.md)"
        )
    return f"invalid settings: {where} is not valid JSON (lists and maps are JSON; see docs/configuration.md)"


def main() -> None:
    try:
        app()
    except ValidationError as exc:
        if not exc.title.endswith("Settings"):
            raise
        typer.echo(f"qwatch: {settings_error(exc)}", err=True)
        sys.exit(2)
    except SettingsError as exc:
        typer.echo(f"qwatch: {unparsable_setting(exc)}", err=True)
        sys.exit(2)
    except KeyFileError as exc:
        typer.echo(f"qwatch: API key file: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
