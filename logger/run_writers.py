"""Where a training run writes what it shows: TensorBoard (logger/visualization.py) and, when
switched on, MLflow (logger/mlflow_writer.py), through one set of calls.

writer.add_scalar(tag, value, step) and the other calls go to every sink that takes them (the
learned graph as JSON, add_json, only MLflow keeps). Used as a context, the writers close when
training ends, and MLflow records how it ended.
"""


class RunWriters:
    def __init__(self, *sinks):
        self.sinks = [sink for sink in sinks if sink.enabled]
        self.outcome = "FINISHED"  # the trainer sets KILLED when it stops on request

    @property
    def enabled(self):
        return bool(self.sinks)

    def __getattr__(self, name):
        if not (name.startswith("add_") or name in ("run_ended", "flush", "close")):
            raise AttributeError(name)  # a writer's calls only: no typo or protocol answered
        methods = [m for m in (getattr(sink, name, None) for sink in self.sinks) if m]

        def each(*args, **kwargs):
            for method in methods:
                method(*args, **kwargs)
        return each

    def __enter__(self):
        return self

    def __exit__(self, error, *_):
        try:
            self.run_ended("FAILED" if error else self.outcome)
        finally:
            self.close()
