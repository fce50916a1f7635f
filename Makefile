# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
.PHONY: setup demo test lint bench kafka-start kafka-stop

setup:
	bash deploy/local/setup.sh

demo: setup
	.venv/bin/qwatch demo

test:
	bash deploy/local/test.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench: setup
	.venv/bin/python bench/scorer_throughput.py
	.venv/bin/python bench/detection.py

kafka-start:
	bash deploy/local/kafka.sh start

kafka-stop:
	bash deploy/local/kafka.sh stop
