"""`stagegen info`, `plugins`, `datasets` and `presets`: what is in a file and what is installed."""

from __future__ import annotations

import json

import click

from ..text import safe_text
from .app import cli


@cli.command()
@click.argument("pipeline", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="print the raw header document")
def info(pipeline, as_json):
    """Describe a pipeline file: format, versions, stages, config."""
    from ..pipeline.file import read_header

    header = read_header(pipeline)
    doc, tensors = header.document, header.tensors
    if as_json:  # JSON escapes control characters itself
        click.echo(json.dumps(doc.as_dict(), indent=2))
        return
    say = lambda line: click.echo(safe_text(line))  # noqa: E731  the text comes from the file: never let it drive the terminal
    cfg = doc.config
    size = cfg.get("image_size", "?")
    say(
        f"{pipeline}: stagegen pipeline, format {doc.format_version}, written by stagegen {doc.stagegen_version} on {doc.created}"
    )
    say(f"images: {cfg.get('channels', '?')} channel(s), {size}x{size}; {len(tensors)} tensors")
    # the config is validated only when the pipeline is built: describe what is there, defensively
    specs = cfg.get("stages") if isinstance(cfg.get("stages"), list) else []
    for rec, spec in zip(doc.stages, specs):
        spec = spec if isinstance(spec, dict) else {}
        extra = (
            ""
            if rec.index == 0
            else (f", loss weight {spec.get('loss_weight', '?')}, {'detached' if spec.get('detach_input') else 'joint'}")
        )
        r = rec.resolution if rec.resolution is not None else "?"
        say(f"  stage {rec.index}: {rec.type} ({rec.kind}) at {r}x{r} from {rec.package} {rec.package_version}{extra}")
        options = spec.get("options") if isinstance(spec.get("options"), dict) else {}
        for k, v in options.items():
            say(f"      {k} = {json.dumps(v)}")
        losses = spec.get("losses") if isinstance(spec.get("losses"), list) else []
        for loss in (entry for entry in losses if isinstance(entry, dict)):
            loss_options = loss.get("options") if isinstance(loss.get("options"), dict) else {}
            detail = ", ".join(f"{k}={json.dumps(v)}" for k, v in loss_options.items())
            label = loss.get("name") or loss.get("type", "?")
            say(f"      loss {label} x {loss.get('weight', 1.0)}" + (f" ({detail})" if detail else ""))
    prior = cfg.get("prior") if isinstance(cfg.get("prior"), dict) else {"type": "normal", "options": {}}
    prior_options = prior.get("options") if isinstance(prior.get("options"), dict) else {}
    options = ", ".join(f"{k}={json.dumps(v)}" for k, v in prior_options.items())
    provider = f" from {doc.prior.package} {doc.prior.package_version}" if doc.prior is not None else ""
    say(
        f"  prior: {prior.get('type', '?')}{provider}"
        + (f" ({options})" if options else "")
        + "; latents are drawn from it when sampling"
    )
    trunk_labels = cfg.get("trunk_labels")
    if isinstance(trunk_labels, list):
        shown = ", ".join(str(label) for label in trunk_labels[:40]) + (", ..." if len(trunk_labels) > 40 else "")
        say(f"  trunk conditioned on the labels {shown} (a CVAE: `stagegen sample PIPELINE --label NAME`)")
    say("  " + describe_conditional(cfg.get("conditional")))
    attributes = cfg.get("attributes")
    if isinstance(attributes, list):
        say(f"  attributes: {', '.join(str(a) for a in attributes)} (latent directions: `sample --attribute`, `edit`)")
    if doc.extra:
        say("extra: " + json.dumps(doc.extra))


def describe_conditional(conditional) -> str:
    """The ``info`` line of a file's conditional prior, read defensively (the file is unchecked)."""
    if not isinstance(conditional, dict):
        return "labels: none (no conditional prior; `stagegen fit-prior PIPELINE --conditional -o NEW` fits one per label)"
    labels = conditional.get("labels") if isinstance(conditional.get("labels"), list) else []
    prior = conditional.get("prior") if isinstance(conditional.get("prior"), dict) else {}
    shown = ", ".join(str(label) for label in labels[:40]) + (f", ... ({len(labels)} in all)" if len(labels) > 40 else "")
    return f"labels: {shown} (a {prior.get('type', '?')} prior per label: `stagegen sample PIPELINE --label NAME`)"


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json):
    """List every registered stage type, network, loss, prior, metric and metric resource with its provider,
    version and options; a composed stage type with its network and default losses."""
    from ..plugin.manager import get_plugin_manager

    manager = get_plugin_manager()
    rows = []
    kinds = (
        (manager.stages, lambda t: t.kind),
        (manager.networks, lambda t: "network"),
        (manager.losses, lambda t: "loss"),
        (manager.priors, lambda t: "prior"),
        (manager.metrics, lambda t: "metric"),
        (manager.metric_resources, lambda t: "metric resource"),
    )
    for registry, kind_of in kinds:
        for name in registry.names():
            st = registry.get(name)
            if registry is manager.stages and name in manager.networks:
                continue  # a network used as a stage is listed once, as a network
            p = registry.provider(name)
            fields = st.options.model_fields if hasattr(st, "options") else {}
            opts = {
                k: {"default": f.get_default(call_default_factory=True), "description": f.description or ""}
                for k, f in fields.items()
            }
            row = {
                "name": name,
                "kind": kind_of(st),
                "package": p.package,
                "version": p.version,
                "plugin": p.plugin,
                "description": st.description,
                "options": opts,
            }
            if getattr(st, "network", None):
                row["network"] = st.network
                row["losses"] = list(st.losses)
            if registry is manager.metrics:
                row["needs"] = list(st.needs)
            rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        click.echo(f"{r['name']} ({r['kind']}) from {r['package']} {r['version']}: {r['description']}")
        if "network" in r:
            losses = ", ".join(f"{spec['type']} x {spec.get('weight', 1.0):g}" for spec in r["losses"])
            click.echo(f"    = network {r['network']} + losses {losses or 'none'}")
        if "needs" in r:
            click.echo(f"    needs {', '.join(r['needs'])}")
        for k, o in r["options"].items():
            click.echo(f"    {k} = {json.dumps(o['default'], default=str)}  {o['description']}")


@cli.command()
def datasets():
    """List registered datasets with their options."""
    from ..plugin.manager import get_plugin_manager

    registry = get_plugin_manager().datasets
    for name in registry.names():
        dt = registry.get(name)
        p = registry.provider(name)
        root = " (needs --data-root)" if dt.needs_root else ""
        click.echo(f"{name} from {p.package} {p.version}{root}: {dt.description}")
        for k, f in dt.options.model_fields.items():
            click.echo(f"    {k} = {json.dumps(f.get_default(call_default_factory=True), default=str)}  {f.description or ''}")


@cli.command()
@click.argument("name", required=False)
def presets(name):
    """List presets, or print one as JSON."""
    from ..plugin.manager import get_plugin_manager

    registry = get_plugin_manager().presets
    if name:
        click.echo(json.dumps(registry.get(name).raw(), indent=2))
        return
    for key in registry.in_order():
        entry = registry.get(key)
        stages = ",".join(s.get("type", "?") for s in entry.raw().get("pipeline", {}).get("stages", []))
        click.echo(f"{key:15s} {stages:45s} {entry.description}")
