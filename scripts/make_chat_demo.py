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
           "Du är en hjälpsam assistent. Svara kort.", "Vilket språk är det vi pratar just nu?", "Vi talar svenska.",
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
    "bg": ("Колко е {a} плюс {b}? Моля, отговори с цяло изречение.", "{a} плюс {b} е равно на {c}.",
           "Здравей! Кой си ти и какво можеш да правиш?", "Здравей! Аз съм малък езиков модел, обучен с occi. Мога да отговарям на кратки въпроси.",
           "Ти си полезен асистент. Отговаряй кратко.", "На какъв език говорим в момента?", "Говорим на български.",
           "Имам три ябълки и купувам още две. Колко ябълки имам сега?", "Три ябълки и още две правят пет.",
           "Сега имаш пет ябълки.", "Благодаря ти много за помощта днес!", "Няма защо! Приятен ден."),
    "el": ("Πόσο κάνει {a} συν {b}; Απάντησε με μια ολόκληρη πρόταση, παρακαλώ.", "{a} συν {b} κάνει {c}.",
           "Γεια σου! Ποιος είσαι και τι μπορείς να κάνεις;", "Γεια σου! Είμαι ένα μικρό γλωσσικό μοντέλο εκπαιδευμένο με το occi. Μπορώ να απαντώ σε σύντομες ερωτήσεις.",
           "Είσαι ένας εξυπηρετικός βοηθός. Απάντησε σύντομα.", "Ποια γλώσσα μιλάμε αυτή τη στιγμή;", "Μιλάμε ελληνικά.",
           "Έχω τρία μήλα και αγοράζω άλλα δύο. Πόσα μήλα έχω τώρα;", "Τρία μήλα και δύο μήλα κάνουν πέντε μήλα.",
           "Τώρα έχεις πέντε μήλα.", "Σε ευχαριστώ πολύ για τη βοήθειά σου σήμερα!", "Παρακαλώ! Να έχεις μια όμορφη μέρα."),
    "et": ("Palun ütle, kui palju on {a} pluss {b}. Vasta terve lausega.", "{a} pluss {b} on {c}.",
           "Tere! Kes sa oled ja mida kõike sa teha oskad?", "Tere! Ma olen väike keelemudel, mis on treenitud occi abil. Ma oskan vastata lühikestele küsimustele.",
           "Sa oled abivalmis assistent. Vasta lühidalt.", "Mis keelt me praegu räägime?", "Me räägime eesti keelt.",
           "Mul on kolm õuna ja ma ostan veel kaks. Mitu õuna mul nüüd on?", "Kolm õuna ja kaks õuna teevad kokku viis õuna.",
           "Sul on nüüd viis õuna.", "Suur aitäh sinu abi eest täna!", "Pole tänu väärt! Ilusat päeva."),
    "ga": ("Cé mhéad atá i {a} móide {b}? Tabhair freagra dom in abairt iomlán, le do thoil.", "Is ionann {a} móide {b} agus {c}.",
           "Dia duit! Cé thusa agus cad is féidir leat a dhéanamh?", "Dia is Muire duit! Is samhail teanga bheag mé a traenáladh le occi. Is féidir liom ceisteanna gearra a fhreagairt.",
           "Is cúntóir cabhrach thú. Freagair go gonta.", "Cén teanga atá á labhairt againn anois?", "Tá Gaeilge á labhairt againn.",
           "Tá trí úll agam agus ceannaím dhá cheann eile. Cé mhéad úll atá agam anois?", "Trí úll móide dhá úll, sin cúig úll.",
           "Tá cúig úll agat anois.", "Go raibh míle maith agat as do chabhair inniu!", "Tá fáilte romhat! Bíodh lá deas agat."),
    "hr": ("Koliko je {a} plus {b}? Molim te, odgovori cijelom rečenicom.", "{a} plus {b} je {c}.",
           "Bok! Tko si ti i što znaš raditi?", "Bok! Ja sam mali jezični model treniran pomoću occija. Mogu odgovarati na kratka pitanja.",
           "Ti si koristan asistent. Odgovaraj kratko.", "Kojim jezikom sada razgovaramo?", "Razgovaramo na hrvatskom.",
           "Imam tri jabuke i kupim još dvije. Koliko jabuka sada imam?", "Tri jabuke i dvije jabuke zajedno su pet jabuka.",
           "Sada imaš pet jabuka.", "Hvala ti puno na današnjoj pomoći!", "Nema na čemu! Želim ti ugodan dan."),
    "hu": ("Mennyi {a} plusz {b}? Kérlek, egy teljes mondattal válaszolj.", "{a} plusz {b} összesen {c}.",
           "Szia! Ki vagy te, és mit tudsz csinálni?", "Szia! Egy kis nyelvi modell vagyok, amelyet az occi segítségével tanítottak. Rövid kérdésekre tudok válaszolni.",
           "Segítőkész asszisztens vagy. Válaszolj röviden.", "Milyen nyelven beszélünk most?", "Most magyarul beszélünk.",
           "Van három almám, és veszek még kettőt. Hány almám van most?", "Három alma és két alma összesen öt alma.",
           "Most öt almád van.", "Nagyon köszönöm a mai segítségedet!", "Szívesen! Legyen szép napod."),
    "lt": ("Kiek bus {a} plius {b}? Prašau atsakyti visu sakiniu.", "{a} plius {b} yra {c}.",
           "Labas! Kas tu esi ir ką moki daryti?", "Labas! Aš esu mažas kalbos modelis, apmokytas su occi. Galiu atsakyti į trumpus klausimus.",
           "Tu esi paslaugus asistentas. Atsakyk trumpai.", "Kokia kalba mes dabar kalbame?", "Mes kalbame lietuviškai.",
           "Turiu tris obuolius ir nusiperku dar du. Kiek obuolių turiu dabar?", "Trys obuoliai ir du obuoliai kartu yra penki obuoliai.",
           "Dabar turi penkis obuolius.", "Labai ačiū už tavo pagalbą šiandien!", "Nėra už ką! Geros dienos."),
    "lv": ("Cik ir {a} plus {b}? Lūdzu, atbildi ar pilnu teikumu.", "{a} plus {b} ir {c}.",
           "Sveiki! Kas tu esi un ko tu proti darīt?", "Sveiki! Es esmu mazs valodas modelis, kas apmācīts ar occi. Es varu atbildēt uz īsiem jautājumiem.",
           "Tu esi izpalīdzīgs asistents. Atbildi īsi.", "Kādā valodā mēs tagad runājam?", "Mēs runājam latviski.",
           "Man ir trīs āboli, un es nopērku vēl divus. Cik ābolu man tagad ir?", "Trīs āboli un divi āboli kopā ir pieci āboli.",
           "Tagad tev ir pieci āboli.", "Liels paldies par tavu palīdzību šodien!", "Nav par ko! Jauku dienu."),
    "mt": ("Kemm jagħmlu {a} u {b} flimkien? Jekk jogħġbok wieġeb b'sentenza sħiħa.", "Meta tgħodd {a} u {b} flimkien, jagħmlu {c}.",
           "Bonġu! Min int u x'kapaċi tagħmel?", "Bonġu! Jien mudell tal-lingwa żgħir imħarreġ bl-occi. Kapaċi nwieġeb mistoqsijiet qosra.",
           "Int assistent li jgħin. Wieġeb fil-qosor.", "Liema lingwa qegħdin nitkellmu bħalissa?", "Qegħdin nitkellmu bil-Malti.",
           "Għandi tliet tuffieħat u nixtri tnejn oħra. Kemm għandi tuffieħat issa?", "Tliet tuffieħat u żewġ tuffieħat jagħmlu ħames tuffieħat.",
           "Issa għandek ħames tuffieħat.", "Grazzi ħafna tal-għajnuna tiegħek illum!", "M'hemm xejn! Nixtieqlek ġurnata sabiħa."),
    "ro": ("Cât fac {a} plus {b}? Te rog să răspunzi cu o propoziție completă.", "{a} plus {b} fac {c}.",
           "Bună! Cine ești și ce știi să faci?", "Bună! Sunt un mic model de limbaj antrenat cu occi. Pot să răspund la întrebări scurte.",
           "Ești un asistent de ajutor. Răspunde pe scurt.", "Ce limbă vorbim în acest moment?", "Vorbim românește.",
           "Am trei mere și mai cumpăr două. Câte mere am acum?", "Trei mere plus două mere fac cinci mere.",
           "Acum ai cinci mere.", "Îți mulțumesc mult pentru ajutorul de astăzi!", "Cu plăcere! O zi frumoasă."),
    "sk": ("Koľko je {a} plus {b}? Chcem odpoveď celou vetou, ďakujem.", "{a} plus {b} je {c}.",
           "Ahoj! Kto si a čo dokážeš urobiť?", "Ahoj! Som malý jazykový model, ktorý bol vytrénovaný pomocou occi. Viem odpovedať na krátke otázky.",
           "Si užitočný asistent. Odpovedaj stručne.", "Akým jazykom práve hovoríme?", "Hovoríme po slovensky.",
           "Mám tri jablká a kúpim si ešte dve. Koľko jabĺk mám teraz?", "Tri jablká a dve jablká sú spolu päť jabĺk.",
           "Teraz máš päť jabĺk.", "Veľmi pekne ďakujem za tvoju dnešnú pomoc!", "Niet za čo! Prajem ti pekný deň."),
    "sl": ("Ali mi lahko poveš, koliko je {a} plus {b}? Odgovori v celem stavku.", "{a} plus {b} je {c}.",
           "Dober dan! Kdo si in pri čem mi lahko pomagaš?", "Dober dan! Sem majhen jezikovni model, ki je bil naučen z occi. Znam odgovarjati na kratka vprašanja.",
           "Si ustrežljiv pomočnik. Odgovarjaj na kratko.", "V katerem jeziku se zdaj pogovarjava?", "Pogovarjava se v slovenščini.",
           "Imam tri jabolka in kupim še dve. Koliko jabolk imam zdaj?", "Tri jabolka in še dve jabolki je skupaj pet jabolk.",
           "Zdaj imaš pet jabolk.", "Najlepša hvala za tvojo današnjo pomoč!", "Ni za kaj! Želim ti lep dan."),
    "ca": ("Quant fan {a} més {b}? Respon amb una frase completa, si us plau.", "{a} més {b} fan {c}.",
           "Hola! Qui ets i què saps fer?", "Hola! Sóc un petit model de llenguatge entrenat amb occi. Puc respondre preguntes curtes.",
           "Ets un assistent servicial. Respon breument.", "Quina llengua estem parlant ara mateix?", "Estem parlant català.",
           "Tinc tres pomes i en compro dues més. Quantes pomes tinc ara?", "Tres pomes més dues pomes fan cinc pomes.",
           "Ara tens cinc pomes.", "Moltes gràcies per la teva ajuda d'avui!", "De res! Que tinguis un bon dia."),
    "eu": ("Zenbat da {a} gehi {b}? Mesedez, erantzun esaldi oso batekin.", "{a} gehi {b} {c} da.",
           "Kaixo! Nor zara eta zer egin dezakezu?", "Kaixo! occirekin entrenatutako hizkuntza-eredu txiki bat naiz. Galdera laburrei erantzun diezaieket.",
           "Laguntzaile atsegina zara. Erantzun laburki.", "Zein hizkuntzatan ari gara hitz egiten orain?", "Euskaraz ari gara.",
           "Hiru sagar ditut eta beste bi erosten ditut. Zenbat sagar ditut orain?", "Hiru sagar gehi bi sagar bost sagar dira.",
           "Orain bost sagar dituzu.", "Eskerrik asko gaurko laguntzagatik!", "Ez horregatik! Egun ona izan."),
    "gl": ("Canto é {a} máis {b}? Responde cunha frase completa, por favor.", "{a} máis {b} son {c}.",
           "Bos días! Quen es ti e en que me podes botar unha man?", "Ola! Son un modelo de linguaxe pequeniño, adestrado co occi. Podo axudarche e responder a cuestións curtas.",
           "Es un asistente servizal. Responde de xeito breve.", "Dime unha cousa: que lingua empregamos nesta conversa?", "Estamos a falar galego.",
           "Teño tres mazás e merco dúas máis. Cantas mazás teño agora?", "Tres mazás máis dúas mazás son cinco mazás.",
           "Agora tes cinco mazás.", "Moitas grazas pola túa axuda de hoxe!", "De nada! Que teñas un bo día."),
    "no": ("Hva blir {a} pluss {b}? Svar gjerne med en hel setning, takk.", "{a} pluss {b} er {c}.",
           "Hei! Hvem er du, og hva kan du gjøre?", "Hei! Jeg er en liten språkmodell som ble laget med occi. Spør meg gjerne om noe kort.",
           "Du er en hjelpsom assistent. Svar kort.", "Hvilket språk er det vi snakker nå?", "Vi snakker norsk.",
           "Jeg har tre epler og kjøper to til. Hva blir antallet epler nå?", "Tre epler og to epler blir fem epler.",
           "Du har nå fem epler.", "Tusen takk for hjelpen din i dag!", "Bare hyggelig! Ha en fin dag."),
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
