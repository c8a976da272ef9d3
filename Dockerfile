FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY broker broker
COPY api api
COPY workers workers
COPY cli cli
COPY bench bench
COPY smsc_sim smsc_sim
COPY whatsapp_sim whatsapp_sim
COPY sql sql
RUN pip install --no-cache-dir -e .
USER nobody
