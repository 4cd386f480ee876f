"""QualBench Lab: evaluate, retrieve-augment and federate LLMs on Chinese qualification exams."""

__version__ = "0.1.0"
