"""Writes corpora/chat-demo/<code>.jsonl, the bundled chat set of the demo-sft run, from the phrase
table below (written for occi): per language, 20 arithmetic questions answered in a sentence and
four short conversations (a greeting, a system prompt, a reasoning trace, thanks).

    python scripts/make_chat_demo.py      # rewrites the files; the output is deterministic
"""
from __future__ import annotations

import json
from pathlib import Path

PAIRS = [(2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 5), (3, 14), (7, 7), (9, 6), (15, 4),
         (20, 13), (11, 8), (16, 16), (5, 19), (13, 2), (18, 6), (21, 9), (14, 14), (25, 5), (30, 12)]

# code: (sum question, sum answer, greeting Q, greeting A, system, language Q, language A,
#        apples Q, apples reasoning, apples A, thanks Q, thanks A)
PHRASES = {
    "en": ("How much is {a} plus {b}? Please answer with a full sentence.", "{a} plus {b} is {c}.",
           "Hello! Who are you and what can you do?", "Hello! I am a small language model trained with occi. I can answer short questions.",
           "You are a helpful assistant. Answer briefly.", "Which language are we speaking right now?", "We are speaking English.",
           "I have three apples and I buy two more. How many apples do I have now?", "Three apples plus two apples make five apples.",
           "You now have five apples.", "Thank you very much for your help today!", "You are welcome! Have a nice day."),
    "de": ("Wie viel ist {a} plus {b}? Bitte antworte mit einem ganzen Satz.", "{a} plus {b} ist {c}.",
           "Hallo! Wer bist du und was kannst du?", "Hallo! Ich bin ein kleines Sprachmodell, trainiert mit occi. Ich kann kurze Fragen beantworten.",
           "Du bist ein hilfreicher Assistent. Antworte kurz.", "Welche Sprache sprechen wir gerade?", "Wir sprechen gerade Deutsch.",
           "Ich habe drei Äpfel und kaufe noch zwei dazu. Wie viele Äpfel habe ich jetzt?", "Drei Äpfel und zwei Äpfel ergeben fünf Äpfel.",
           "Du hast jetzt fünf Äpfel.", "Vielen Dank für deine Hilfe heute!", "Gern geschehen! Einen schönen Tag noch."),
    "fr": ("Combien font {a} plus {b} ? Réponds par une phrase complète, s'il te plaît.", "{a} plus {b} font {c}.",
           "Bonjour ! Qui es-tu et que sais-tu faire ?", "Bonjour ! Je suis un petit modèle de langue entraîné avec occi. Je peux répondre à des questions courtes.",
           "Tu es un assistant serviable. Réponds brièvement.", "Quelle langue parlons-nous en ce moment ?", "Nous parlons français.",
           "J'ai trois pommes et j'en achète deux autres. Combien de pommes ai-je maintenant ?", "Trois pommes plus deux pommes font cinq pommes.",
           "Tu as maintenant cinq pommes.", "Merci beaucoup pour ton aide aujourd'hui !", "Avec plaisir ! Bonne journée."),
    "es": ("¿Cuánto es {a} más {b}? Responde con una frase completa, por favor.", "{a} más {b} son {c}.",
           "¡Hola! ¿Quién eres y qué sabes hacer?", "¡Hola! Soy un pequeño modelo de lenguaje entrenado con occi. Puedo responder preguntas cortas.",
           "Eres un asistente útil. Responde brevemente.", "¿Qué idioma estamos hablando ahora mismo?", "Estamos hablando español.",
           "Tengo tres manzanas y compro dos más. ¿Cuántas manzanas tengo ahora?", "Tres manzanas más dos manzanas son cinco manzanas.",
           "Ahora tienes cinco manzanas.", "¡Muchas gracias por tu ayuda de hoy!", "¡De nada! Que tengas un buen día."),
    "it": ("Quanto fa {a} più {b}? Rispondi con una frase completa, per favore.", "{a} più {b} fa {c}.",
           "Ciao! Chi sei e che cosa sai fare?", "Ciao! Sono un piccolo modello linguistico addestrato con occi. Posso rispondere a domande brevi.",
           "Sei un assistente disponibile. Rispondi in breve.", "Quale lingua stiamo parlando in questo momento?", "Stiamo parlando italiano.",
           "Ho tre mele e ne compro altre due. Quante mele ho adesso?", "Tre mele più due mele fanno cinque mele.",
           "Adesso hai cinque mele.", "Grazie mille per il tuo aiuto di oggi!", "Prego! Buona giornata."),
    "pt": ("Quanto é {a} mais {b}? Responde com uma frase completa, por favor.", "{a} mais {b} são {c}.",
           "Olá! Quem és tu e o que sabes fazer?", "Olá! Sou um pequeno modelo de linguagem treinado com o occi. Posso responder a perguntas curtas.",
           "És um assistente prestável. Responde de forma breve.", "Que língua estamos a falar neste momento?", "Estamos a falar português.",
           "Tenho três maçãs e compro mais duas. Quantas maçãs tenho agora?", "Três maçãs mais duas maçãs são cinco maçãs.",
           "Agora tens cinco maçãs.", "Muito obrigado pela tua ajuda de hoje!", "De nada! Tem um bom dia."),
    "nl": ("Hoeveel is {a} plus {b}? Antwoord alsjeblieft met een hele zin.", "{a} plus {b} is {c}.",
           "Hallo! Wie ben jij en wat kun je doen?", "Hallo! Ik ben een klein taalmodel, getraind met occi. Ik kan korte vragen beantwoorden.",
           "Je bent een behulpzame assistent. Antwoord kort.", "Welke taal spreken we op dit moment?", "We spreken Nederlands.",
           "Ik heb drie appels en ik koop er nog twee bij. Hoeveel appels heb ik nu?", "Drie appels plus twee appels zijn vijf appels.",
           "Je hebt nu vijf appels.", "Heel erg bedankt voor je hulp vandaag!", "Graag gedaan! Nog een fijne dag."),
    "pl": ("Ile to jest {a} plus {b}? Odpowiedz proszę pełnym zdaniem.", "{a} plus {b} to {c}.",
           "Cześć! Kim jesteś i co potrafisz?", "Cześć! Jestem małym modelem językowym wytrenowanym za pomocą occi. Potrafię odpowiadać na krótkie pytania.",
           "Jesteś pomocnym asystentem. Odpowiadaj krótko.", "W jakim języku teraz rozmawiamy?", "Rozmawiamy po polsku.",
           "Mam trzy jabłka i kupuję jeszcze dwa. Ile mam teraz jabłek?", "Trzy jabłka i dwa jabłka to razem pięć jabłek.",
           "Masz teraz pięć jabłek.", "Bardzo dziękuję za twoją dzisiejszą pomoc!", "Nie ma za co! Miłego dnia."),
    "sv": ("Hur mycket är {a} plus {b}? Svara gärna med en hel mening.", "{a} plus {b} är {c}.",
           "Hej! Vem är du och vad kan du göra?", "Hej! Jag är en liten språkmodell som tränats med occi. Jag kan svara på korta frågor.",
           "Du är en hjälpsam assistent. Svara kort.", "Vilket språk talar vi just nu?", "Vi talar svenska.",
           "Jag har tre äpplen och köper två till. Hur många äpplen har jag nu?", "Tre äpplen och två äpplen blir fem äpplen.",
           "Du har nu fem äpplen.", "Tack så mycket för din hjälp i dag!", "Varsågod! Ha en trevlig dag."),
    "da": ("Hvor meget er {a} plus {b}? Svar venligst med en hel sætning.", "{a} plus {b} er {c}.",
           "Hej! Hvem er du, og hvad kan du gøre?", "Hej! Jeg er en lille sprogmodel, der er trænet med occi. Jeg kan svare på korte spørgsmål.",
           "Du er en hjælpsom assistent. Svar kort.", "Hvilket sprog taler vi lige nu?", "Vi taler dansk.",
           "Jeg har tre æbler og køber to mere. Hvor mange æbler har jeg nu?", "Tre æbler og to æbler giver fem æbler.",
           "Du har nu fem æbler.", "Mange tak for din hjælp i dag!", "Selv tak! Hav en god dag."),
    "fi": ("Paljonko on {a} plus {b}? Vastaa kokonaisella lauseella, kiitos.", "{a} plus {b} on {c}.",
           "Hei! Kuka sinä olet ja mitä osaat tehdä?", "Hei! Olen pieni kielimalli, joka on koulutettu occilla. Osaan vastata lyhyisiin kysymyksiin.",
           "Olet avulias avustaja. Vastaa lyhyesti.", "Mitä kieltä me puhumme juuri nyt?", "Puhumme suomea.",
           "Minulla on kolme omenaa ja ostan kaksi lisää. Montako omenaa minulla on nyt?", "Kolme omenaa ja kaksi omenaa on yhteensä viisi omenaa.",
           "Sinulla on nyt viisi omenaa.", "Kiitos paljon avustasi tänään!", "Ole hyvä! Hyvää päivänjatkoa."),
    "cs": ("Kolik je {a} plus {b}? Odpověz prosím celou větou.", "{a} plus {b} je {c}.",
           "Ahoj! Kdo jsi a co umíš?", "Ahoj! Jsem malý jazykový model natrénovaný pomocí occi. Umím odpovídat na krátké otázky.",
           "Jsi užitečný asistent. Odpovídej stručně.", "Jakým jazykem právě mluvíme?", "Mluvíme česky.",
           "Mám tři jablka a koupím si ještě dvě. Kolik mám teď jablek?", "Tři jablka a dvě jablka jsou dohromady pět jablek.",
           "Teď máš pět jablek.", "Moc děkuji za tvou dnešní pomoc!", "Není zač! Přeji hezký den."),
}


def conversations(code: str) -> list[dict]:
    (sum_q, sum_a, hello_q, hello_a, system, lang_q, lang_a, apples_q, apples_r, apples_a,
     thanks_q, thanks_a) = PHRASES[code]
    rows = [[{"role": "user", "content": sum_q.format(a=a, b=b)},
             {"role": "assistant", "content": sum_a.format(a=a, b=b, c=a + b)}] for a, b in PAIRS]
    rows.append([{"role": "user", "content": hello_q}, {"role": "assistant", "content": hello_a}])
    rows.append([{"role": "system", "content": system}, {"role": "user", "content": lang_q},
                 {"role": "assistant", "content": lang_a}])
    rows.append([{"role": "user", "content": apples_q},
                 {"role": "assistant", "content": apples_a, "reasoning": apples_r}])
    rows.append([{"role": "user", "content": hello_q}, {"role": "assistant", "content": hello_a},
                 {"role": "user", "content": thanks_q}, {"role": "assistant", "content": thanks_a}])
    return [{"messages": messages, "language": code,
             "provenance": {"author": "occi", "script": "scripts/make_chat_demo.py"}} for messages in rows]


def main() -> None:
    out = Path(__file__).resolve().parents[1] / "corpora" / "chat-demo"
    out.mkdir(parents=True, exist_ok=True)
    for code in PHRASES:
        lines = [json.dumps(row, ensure_ascii=False) for row in conversations(code)]
        (out / f"{code}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
