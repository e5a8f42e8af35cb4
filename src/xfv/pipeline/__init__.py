"""Jobs that combine faces, models and the method: embedding, evaluation, explanation, batch compute."""
