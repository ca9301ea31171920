"""One chat call made with the official OpenAI SDK for Python (`openai`,
unmodified, in end2end/.venv), for the Rust integration tests in
end2end/http/sdk.rs: the twin of call.mjs, printing the same JSON line.

Environment: TOLLGATE_URL (the server's origin), TOLLGATE_KEY, SDK_BODY (the
request, JSON); argument: `json`, `stream`, or `models` (list every model,
then retrieve the request's).
"""

import json
import os
import sys

import openai

client = openai.OpenAI(
    api_key=os.environ["TOLLGATE_KEY"],
    base_url=os.environ["TOLLGATE_URL"] + "/v1",
    # The tests look at what one call answers; the SDK would retry 429s and 5xx.
    max_retries=0,
    timeout=20.0,
)
body = json.loads(os.environ["SDK_BODY"])
outcome = {}


def describe(error):
    response = getattr(error, "response", None)
    return {
        "class": type(error).__name__,
        "is_api_error": isinstance(error, openai.APIError),
        "status": getattr(error, "status_code", None),
        "code": getattr(error, "code", None),
        "type": getattr(error, "type", None),
        "param": getattr(error, "param", None),
        "message": str(getattr(error, "message", error)),
        "retry_after": response.headers.get("retry-after") if response is not None else None,
    }


try:
    if sys.argv[1] == "models":
        outcome["models"] = [model.id for model in client.models.list()]
        outcome["retrieved"] = client.models.retrieve(body["model"]).model_dump()
    elif sys.argv[1] == "stream":
        outcome["text"] = ""
        for chunk in client.chat.completions.create(**body, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                outcome["text"] += chunk.choices[0].delta.content
    else:
        outcome["answer"] = client.chat.completions.create(**body).model_dump()
except openai.OpenAIError as error:
    outcome["error"] = describe(error)
print(json.dumps(outcome))
