"""What a run says on the console: a one-line model summary, the run's header, each epoch's
block with its units, and the graph's numbers as a table of sources by targets."""
from logger.logger import format_value

EDGE_TABLES = {"edge_probs": "σ(α)", "edge_values_at_freeze": "value at the freeze, {unit}",
               "edge_values": "value, {unit}"}


def model_summary(model):
    """The model's name and its trainable parameters, in all and per part."""
    parts = [(name, sum(p.numel() for p in module.parameters() if p.requires_grad))
             for name, module in model.named_children()]
    return (f"{type(model).__name__}: {model.n_parameters():,} trainable parameters ("
            + ", ".join(f"{name} {count:,}" for name, count in parts if count) + ")")


def data_description(config):
    """The data loader's type and the data set it reads (its dataset or source argument;
    the piano-roll loader has one data set only)."""
    section = config["data_loader"]
    args = section.get("args", {})
    return {"loader": section["type"], "dataset": args.get("dataset", args.get("source"))}


def run_header(config, train_loader, valid_loader, device):
    """The data and how much of it, the batches an epoch has, the epochs and the device."""
    data = data_description(config)
    dataset = f" ({data['dataset']})" if data.get("dataset") else ""
    valid = f", {examples(valid_loader)} for validation" if valid_loader is not None else ""
    return (f"Data: {data['loader']}{dataset}, {examples(train_loader)} training examples"
            f"{valid}; {len(train_loader)} batches of up to {train_loader.batch_size} per epoch"
            f" and process, {config['trainer']['epochs']} epochs; device {device}")


def examples(loader):
    """How many examples a loader gives, and of how many in its split when a subset."""
    of = f" (of {loader.split_size:,})" if loader.split_size != loader.n_items else ""
    return f"{loader.n_items:,}{of}"


def loss_unit(model, loader):
    """What the losses are per: a sequence model's are per step, others' per example."""
    if hasattr(model, "generate"):
        return "nats per step"
    return "nats per image" if getattr(loader, "image_shape", None) else "nats per example"


def epoch_lines(log, unit):
    """The epoch's block: a heading with the unit, a line per number, a table per
    {edge: number} (edge probabilities and values)."""
    lines = [f"Epoch {log['epoch']} (losses, KL and edge values in {unit})"]
    for key, value in log.items():
        if key in EDGE_TABLES and value:
            lines.append(f"    {key} ({EDGE_TABLES[key].format(unit=unit)}), from row to column:")
            lines += ["        " + row for row in edge_table(value)]
        else:
            lines.append(f"    {key:24s}: {format_value(value)}")
    return lines


def edge_table(values):
    """{"z2->z0": 0.9, "z1(t-1)->z0": 0.2, ...} as rows of sources by columns of targets."""
    pairs = {tuple(name.split("->")): value for name, value in values.items()}
    sources = sorted({s for s, _ in pairs}, key=lambda s: ("(t-1)" in s, node_of(s)))
    targets = sorted({t for _, t in pairs}, key=node_of)
    width = max(len(s) for s in sources)
    rows = [" " * width + "".join(f"{t:>9}" for t in targets)]
    for source in sources:
        cells = (f"{pairs[(source, t)]:9.3f}" if (source, t) in pairs else f"{'·':>9}"
                 for t in targets)
        rows.append(f"{source:<{width}}" + "".join(cells))
    return rows


def node_of(name):
    """The node index of a name such as z3 or z3(t-1)."""
    return int(name[1:].split("(")[0])
