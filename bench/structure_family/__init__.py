"""The structure benchmark (python -m bench.structure_family): see __main__.py."""
