"""``gateway worker``: the delivery worker for production (Redis broker), any number of machines."""

from __future__ import annotations

import signal
import threading

import click
import redis

from gateway.cli.common import load_settings
from gateway.delivery.service import Sweeper, start_worker
from gateway.errors import ConfigurationError
from gateway.serving.affinity import AffinityPlan, ClaimedCpu, claim_cpu, delivery_plan, pin_this_process
from gateway.web.app import create_app


@click.command()
@click.option("--threads", type=click.IntRange(min=1), default=8, show_default=True, help="Delivery threads.")
@click.option(
    "--prefetch",
    type=int,
    default=0,
    help="Messages to prefetch per worker (dramatiq's default, 2 x threads, caps throughput).",
)
@click.option(
    "--per-recipient",
    type=click.IntRange(min=0),
    default=0,
    help="Pushes one recipient may have in flight at a time [default: half the threads], so that a recipient "
    "that stops answering cannot hold every thread.",
)
@click.option(
    "--sweep-interval",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between sweeps for deliveries left behind (crash, lost broker message, due retry).",
)
@click.option(
    "--shutdown-grace",
    type=float,
    default=60.0,
    show_default=True,
    help="On SIGTERM or SIGINT, seconds to let deliveries in flight finish (a push waits at most its "
    "recipient's --push-timeout); a delivery still running after that is recovered by another worker's sweep.",
)
def worker(threads: int, prefetch: int, per_recipient: int, sweep_interval: float, shutdown_grace: float) -> None:
    """Deliver accepted messages: consume the broker's delivery queue and sweep the outbox.

    Needs GATEWAY_BROKER_URL=redis://... (the embedded default runs its worker inside `gateway serve`).
    On SIGTERM or SIGINT it takes no new delivery, finishes those in flight, gives the broker back
    the messages it had fetched but not started, and exits 0.
    """
    settings = load_settings()
    if settings.is_embedded:
        raise click.ClickException("the embedded default delivers inside `gateway serve`; set GATEWAY_BROKER_URL")
    broker = settings.broker_url.split("@")[-1]
    # With GATEWAY_CPU_AFFINITY=on, one CPU of its own before any thread starts (the claim is held
    # until the process exits); `auto` leaves it unpinned (gateway.serving.affinity.delivery_plan).
    affinity = delivery_plan(settings.cpu_affinity)
    claimed = claim_cpu(affinity.cpus) if affinity.cpus else None
    if claimed is not None:
        pin_this_process(claimed.cpu)
    try:  # the configuration first (keys, revocation lists): it says what to fix on this machine
        app = create_app(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    try:  # after the configuration: its errors say more
        redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        raise click.ClickException(
            f"cannot reach the broker at {broker}: {str(exc).rstrip('.')}; start Redis or correct GATEWAY_BROKER_URL"
        ) from None
    service = app.extensions["gateway"].delivery
    consumer = start_worker(service, threads=threads, queue_prefetch=prefetch, per_recipient=per_recipient)
    sweeper = Sweeper(service, sweep_interval, also=app.extensions["gateway"].periodic_tasks())
    sweeper.start()
    click.echo(
        f"delivery worker: {threads} threads on {broker}, at most {service.gate.max_in_flight} "
        f"per recipient; sweeping every {sweep_interval:g} s; {_placement(affinity, claimed)}"
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    click.echo(f"delivery worker stopping: finishing the deliveries in flight (at most {shutdown_grace:g} s)")
    sweeper.stop()
    consumer.stop(timeout=int(shutdown_grace * 1000))
    sweeper.join(timeout=max(shutdown_grace, 1.0))
    service.broker.close()
    app.extensions["gateway"].engine.dispose()
    click.echo("delivery worker stopped")


def _placement(affinity: AffinityPlan, claimed: ClaimedCpu | None) -> str:
    if claimed is not None:
        return f"on CPU {claimed.cpu}"
    if affinity.cpus:
        return "on any CPU (every CPU is held by another delivery worker of this machine)"
    return f"CPU affinity {affinity.reason}"
