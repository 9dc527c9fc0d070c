"""Sound event detection: timestamped events from frame scores, on files of any length."""


def __getattr__(name):
    # MILClassifier imports scikit-learn (seconds): load it only when someone asks for it.
    if name == "MILClassifier":
        from .mil import MILClassifier

        return MILClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
