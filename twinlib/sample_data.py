"""A synthetic persona's chat history, written as real WhatsApp (Android) exports.

The course needs data that anyone may run, commit and share: this module invents
:data:`PERSONA_NAME`, five chats with made-up people (:data:`PARTNERS`) and about four months of
conversations, and writes them exactly like WhatsApp's "Export chat" on Android does::

    04/03/2024, 07:00 - Messages and calls are end-to-end encrypted. No one outside of ...
    04/03/2024, 12:14 - Maya Okafor: Are you free on Saturday?
    04/03/2024, 12:15 - Robin Vale: yeah saturday works for me 🌵

The persona has a distinctive style (see :data:`PERSONA_MARKERS`) so the later stages can show a
model learning it: :func:`persona_style_score` measures it on any reply. Partners write in
sentence case with full punctuation. Replies follow topic templates with shared slot fillers
(places, dishes, films, towns... all invented), so a reply relates to the message it answers.
The texts also carry fictional PII for the anonymizer to find: reserved-range phone numbers
(+44 7700 900xxx, 555-010x), ``@example.com`` addresses, ``https://example.org`` links, a test
IBAN and card number, a documentation IP address and coordinates, and the partners' first names.

Everything is drawn from ``random.Random(seed)`` from a fixed start date: the same seed gives
byte-identical files. ``python -m twinlib.sample_data --out data/sample`` writes them.
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Sequence

from twinlib.style import count_words, ends_with_punct, find_emoji, is_lowercase, tokenize

PERSONA_NAME = "Robin Vale"
CLIMBER = "\U0001F9D7\u200d\u2640\ufe0f"  # 🧗‍♀️, one emoji made of a ZWJ sequence
PERSONA_FIRST = "Robin"

#: chat title (as in the file name) -> the other members, by display name
PARTNERS: dict[str, tuple[str, ...]] = {
    "Maya Okafor": ("Maya Okafor",),
    "Jonah Pike": ("Jonah Pike",),
    "Tess Vale": ("Tess Vale",),
    "Climbing crew": ("Priya Nandakumar", "Olly Brandt", "Sam Keene"),
    "Dana Whitlock": ("Dana Whitlock",),
}

#: What makes the persona's messages recognisable; :func:`persona_style_score` checks each one.
#: ``lowercase``: never a capital letter. ``no_final_period``: never ends with a full stop.
#: ``laughs``: "haha" and its variants. ``phrases``: signature phrases. ``emoji``: the signature
#: emoji (🌵 most of all; 🧗‍♀️ is one ZWJ sequence). ``max_words``: replies are short.
PERSONA_MARKERS: dict[str, object] = {
    "lowercase": True,
    "no_final_period": True,
    "laughs": ("haha", "hahah", "hahaha"),
    "phrases": ("no stress", "sounds mint", "legend", "keen as", "sweet as"),
    "emoji": ("\U0001F335", "\U0001F64C", CLIMBER),
    "max_words": 12,
}

START = datetime(2024, 3, 4)
ENCRYPTION_NOTICE = ("Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
                     "WhatsApp, can read or listen to them. Tap to learn more.")
MEDIA = "<Media omitted>"
DELETED_OTHER = "This message was deleted"
DELETED_MINE = "You deleted this message"
EDITED = " <This message was edited>"


def _opts(text: str) -> list[str]:
    """Split ``"a | b | c"`` into options; ``\\n`` inside an option is a line break."""
    return [o.strip().replace("\\n", "\n") for o in text.split(" | ")]


def _move(*intents: tuple[str, str]) -> list[tuple[list[str], list[str]]]:
    """One step of a topic: its intents, each ``(prompts, replies)`` as ``"a | b"`` options.

    The prompts of one intent say the same thing in different words; the replies answer them,
    so whichever pair is drawn, the reply fits the message it answers.
    """
    return [(_opts(prompts), _opts(replies)) for prompts, replies in intents]


# Slot fillers, all invented. Partner templates use them as written; the persona lower-cases.
SLOTS: dict[str, list[str]] = {
    "day": ["Saturday", "Sunday", "Friday", "Thursday evening", "Saturday morning", "Sunday afternoon",
            "Wednesday", "Monday night", "the bank holiday"],
    "time": ["7", "half 6", "8:30", "noon", "10ish", "6:15", "quarter past 7", "1", "half 4"],
    "place": ["The Copper Kettle", "Bramble & Rye", "Lantern House", "Saltmarsh Kitchen", "The Little Fig",
              "Harbour Noodle Bar", "Oak & Ember", "Moss Street Deli", "Pepper Lane Canteen", "The Blue Heron",
              "Juniper Hall", "Fennick's"],
    "dish": ["ramen", "tacos", "dumplings", "shakshuka", "katsu curry", "pho", "halloumi wraps", "mushroom risotto",
             "pad thai", "falafel", "sourdough pizza", "chilli", "bao buns", "paneer tikka", "gnocchi", "laksa"],
    "bake": ["banana bread", "lemon drizzle", "cinnamon buns", "brownies", "carrot cake", "a victoria sponge"],
    "gym": ["Vertigo Walls", "The Boulder Barn", "Granite Yard", "Summit Lab", "Crimp Factory"],
    "crag": ["Hollow Tor", "Raven Edge", "Kestrel Crag", "Gull Point", "Blackwater Slabs"],
    "grade": ["6a", "6b+", "6c", "7a", "V3", "V4", "V5"],
    "route": ["Tin Whistle", "The Long Goodbye", "Moth Wing", "Salt Lick", "Quiet Riot Arete", "Pebble Dash"],
    "film": ["The Glass Orchard", "Midnight at Ferrow Bay", "Paper Satellites", "The Last Lighthouse Keeper",
             "Copperhead Summer", "A Quiet Engine", "Northbound Static", "The Salt Kings", "Velvet Tide",
             "Echoes of Marrow Lane", "Seven Lanterns", "Dust and Daylight"],
    "cinema": ["Orpheum Rooms", "Kingsway Screen", "Electric Palace", "Lumen Cinema"],
    "town": ["Porthwenna", "Elder Cove", "Lake Ardvale", "Kessick", "Marrowby", "Stillwater Bay", "Glenharrow",
             "Tansley Sands"],
    "month": ["May", "June", "July", "August", "September"],
    "duration": ["a week", "four days", "the long weekend", "ten days", "five nights"],
    "item": ["tent", "drill", "camping stove", "belay device", "ladder", "board game", "cool box", "bike pump",
             "projector", "sleeping bag", "hiking poles", "pasta machine"],
    "project": ["the Q3 report", "the onboarding deck", "the Halcyon migration", "the budget sheet",
                "the client demo", "the supplier review", "the Northwind proposal"],
    "meeting": ["the standup", "the planning meeting", "the 2pm sync", "Thursday's review", "the retro"],
    "gift": ["a plant", "a candle", "a chalk bag", "a cookbook", "a bottle of gin", "a jigsaw",
             "theatre tickets", "a scarf", "a fancy teapot"],
    "relative": ["Mum", "Dad", "Gran", "Uncle Pete", "Aunt Lou"],
    "weather": ["rain", "wind", "thunderstorms", "drizzle", "fog", "sleet"],
    "temp": ["14", "18", "22", "26", "29", "9"],
}

# topic -> "moves": the steps of a conversation in order (the first one opens it), and
# "me_open": how the persona opens the topic when they start the conversation.
TOPICS: dict[str, dict[str, list]] = {
    "plans": {
        "moves": [
            _move(("Are you free on {day}? | Are you around {day}? | Do you fancy meeting up on {day}? | "
                   "It's been ages! Are you free {day}? | We should catch up soon. Does {day} work for you?",
                   "yeah {day} works for me | free after {time} | {day} sounds mint | yes! been way too long | "
                   "should be free, what's the plan | i'm around, no stress | {day} is good, just not before {time} | "
                   "busy {day} but free the day after | keen as, what did you have in mind"),
                  ("Any plans for {day}? | What are you up to on {day}?",
                   "nothing yet, you? | climbing in the morning, free after | absolutely nothing, bliss | "
                   "might see {friend}, why | totally free, what are you thinking")),
            _move(("How about {place} at {time}? | Shall we say {time} at {place}? | "
                   "I could book a table at {place} for {time}. Does that suit you? | "
                   "{friend} suggested {place} at {time}. Is that too early?",
                   "{time} at {place} sounds mint | perfect, see you at {place} | legend, book it | {time} is perfect | "
                   "can we do a bit later? like half an hour | oh i love {place}, yes | {place} it is | "
                   "ok so\\n{time} at {place}\\ni'll bring snacks | wait\\nis {place} the one with the garden"),
                  ("Where do you want to go? | Any ideas where we could go? | Pub, food or a walk?",
                   "{place}? | food, always food | walk then {place}? | somewhere with {dish} | dealer's choice")),
            _move(("Should I invite {friend} as well? | {friend} might join us later, is that okay? | "
                   "Do you mind if {friend} comes along?",
                   "yes invite {friend}! | the more the merrier | course, no stress | yeah tell {friend} to come | "
                   "sweet as, haven't seen {friend} in ages")),
            _move(("I might be ten minutes late, sorry. | Running a bit behind. Start without me? | "
                   "The bus is late, I'll be there in fifteen minutes.",
                   "no stress, i'll grab us a table | no rush, i'm not there yet either | all good, take your time | "
                   "classic, see you soon | i'll order you a drink")),
            _move(("That was so much fun, thanks for tonight! | "
                   "Lovely to see you today. We need to do that more often. | "
                   "Thanks for organising, I had a great time.",
                   "same, that was mint | legend, thanks for coming | yes, next time is on me | "
                   "loved it, let's do it again soon | so good, my face hurts from laughing")),
        ],
        "me_open": _opts("you free {day}? | ok who's around {day} | fancy doing something {day}? | "
                         "been ages, catch up soon?"),
    },
    "food": {
        "moves": [
            _move(("Have you been to {place} yet? Their {dish} is supposed to be amazing. | "
                   "Have you tried the new place, {place}? | "
                   "Someone told me {place} does the best {dish} in town.",
                   "not yet but {dish} sounds mint | haven't, we should go | "
                   "{place} is so good, the {dish} especially | yes! get the {dish} | been once, loved it"),
                  ("I'm making {dish} tonight. Do you want to come over? | "
                   "There's far too much {dish} here. Do you want some? | Come round for dinner? I'm doing {dish}.",
                   "yes please, what time | omw, save me some {dish} | ooh keen as | can i bring anything | "
                   "you had me at {dish} | yes\\nyes\\nyes"),
                  ("What are you having for dinner? | What's for tea tonight?",
                   "probably just {dish} again | toast, living the dream | {dish} if i can be bothered | "
                   "no idea, suggestions welcome"),
                  ("I just had the best {dish} of my life at {place}. | The {dish} at {place} was unreal.",
                   "jealous, i had toast | ok now i'm hungry | we're going together next time | "
                   "{place} never misses"),
                  ("Do you have a good recipe for {dish}? | How do you make your {dish}?",
                   "i do! will send it later | loads of garlic, that's the secret | "
                   "it's from my mum, will send it | honestly i wing it every time")),
            _move(("I'll bring dessert. Any requests? | Shall I bring pudding?",
                   "anything with chocolate | {bake} please | surprise me | yes, something with chocolate"),
                  ("Do you eat {dish2}? I can't remember. | Is {dish2} okay, or would you rather have something else?",
                   "i eat everything, no stress | {dish2} is perfect | love {dish2}, yes | not a huge fan tbh")),
            _move(("How was the {dish} at {place}? | Was {place} as good as everyone says?",
                   "so good, going back next week | honestly mint, get the {dish2} | "
                   "overrated but the chips were great | ten out of ten would eat again | bit salty but still good")),
            _move(("What do I need for the {dish}? I'm at the shop now. | I'm at the supermarket. Do we need anything?",
                   "just garlic and limes i think | oat milk and bread pls | we're out of eggs | "
                   "grab stuff for {dish2} if you see it | all good, got everything")),
        ],
        "me_open": _opts("ok i need dinner ideas | just found a new {dish} place | what are you eating tonight"),
    },
    "climbing": {
        "moves": [
            _move(("Anyone up for {gym} on {day}? | Are you climbing this week? | "
                   "Who's keen for a session at {gym} {day}?",
                   "yes! keen as | i'm in, {time}? | {gym} {day} sounds mint | count me in | "
                   "maybe, depends on work | {day} works, see you at {gym} | "
                   "ok plan\\n{gym} at {time}\\nfood after?"),
                  ("{gym} has reset the {grade} circuit. Shall we go and try it? | New problems are up at {gym}!",
                   "can't wait, fingers are ready | ooh yes, i want the {grade} | keen as, let's go {day}"),
                  ("The forecast looks dry for {crag} on {day}. Who's in? | "
                   "Shall we go outside this weekend? {crag} should be dry.",
                   "always keen for {crag} | yes! finally real rock | in, as long as it's not wet | "
                   "i'm in, {crag} sounds mint")),
            _move(("Did you finish {route} in the end? | Have you sent {route} yet?",
                   "so close, fell off the last move | finally sent it | nope, the crux is brutal | "
                   "{route} is my nemesis"),
                  ("How did the {grade} go? | Have you sent the {grade} on the overhang yet?",
                   "sent it first go, legend status | not yet, need better feet | flashed it! | still working on it")),
            _move(("Can someone bring a spare harness? {friend} left theirs at the wall. | "
                   "Who's bringing the rope? | Does anyone have a spare belay device?",
                   "i've got a spare, no stress | i'll bring mine | got two ropes, i'll bring the 60 | "
                   "yep, in my bag already | i always have spares")),
            _move(("My forearms are destroyed after yesterday. | I think I tweaked my finger on that crimp. | "
                   "I'm so sore, I can barely lift my coffee.",
                   "same, worth it though | ice it and rest, no stress | take a week off legend | "
                   "that's the sign of a good session | oof, tape it up")),
            _move(("Who's driving to {crag}? | I can take three people in my car.",
                   "i can drive, room for three | legend, i'll bring snacks | i'll grab a lift with you | "
                   "i'll bring coffee for the drive"),
                  ("Shall we meet at the car park at {time}?",
                   "car park at {time} sounds mint | {time} works | can we say ten past?")),
        ],
        "me_open": _opts("who's keen for {gym} {day} | conditions look mint for {crag} | "
                         "need a climbing partner {day}"),
    },
    "work": {
        "moves": [
            _move(("Hi {me}, do you have a minute to look at {project}? | Could you take a look at {project} today?",
                   "yep, give me five minutes | on it, no stress | looking now | after lunch ok?"),
                  ("Morning! Did you see the comments on {project}? | The client left feedback on {project}.",
                   "just saw them, will fix after lunch | yes, mostly small stuff | ugh, reading now | on it"),
                  ("Quick question about {project}: which version is the latest? | "
                   "Where's the latest version of {project}?",
                   "the one from friday i think | shared folder, v3 | i'll send you the link | check the team drive"),
                  ("Are you joining {meeting} today? | Are you coming to {meeting}?",
                   "yes, joining in a sec | running 2 min late | yep, on my way | can't today, clashing"),
                  ("Could you send me the numbers for {project} when you get a chance? | "
                   "Do you have the figures for {project}?",
                   "sure, will send by {time} | sending now | give me an hour | yep, in your inbox")),
            _move(("The client wants it by Friday. Is that realistic?",
                   "tight but doable | friday is fine, no stress | monday would be safer"),
                  ("Can we move {meeting} to tomorrow? | Could we push {meeting} back by an hour?",
                   "works for me | moving it now | sure, no stress"),
                  ("I'm running late for {meeting}. Can you start without me?",
                   "sure, i'll start it off | no stress, we'll wait | starting now")),
            _move(("Thanks for covering for me yesterday. I owe you one.",
                   "no stress at all | you'd do the same for me | anytime legend"),
                  ("Great work on {project}, the feedback was really positive. | Thanks, that's really helpful.",
                   "glad it landed well | team effort | thanks! big relief")),
            _move(("Agenda for {meeting}:\\n1. Status of {project}\\n2. Budget\\n3. Anything else? | "
                   "Notes from today:\\n- {project} is on track.\\n- We need sign-off by Friday.\\n"
                   "- Next check-in is on Monday.",
                   "looks good, nothing to add | can we add hiring to the list | thanks, all clear | "
                   "sounds mint, thanks for writing it up")),
            _move(("Are you working from home tomorrow?", "yeah home tomorrow | in the office tmrw, come say hi"),
                  ("Do you want to grab lunch later? | Coffee in five minutes?",
                   "lunch sounds mint, 1ish? | coffee yes please | give me ten")),
        ],
        "me_open": _opts("quick q about {project} | did you get my email about {project} | "
                         "running 5 min late for {meeting}"),
    },
    "weather": {
        "moves": [
            _move(("Have you seen the forecast for {day}? It looks like {weather} all day.",
                   "ugh, so much {weather} | staying in then, no stress | classic british summer"),
                  ("It's absolutely pouring here.", "same here, soaked | classic | perfect sofa weather"),
                  ("It's {temp} degrees and I'm melting. | It's so hot today.",
                   "i'm melting too | {temp} degrees is too much | ice lolly time"),
                  ("Is it sunny where you are?", "sunny here, sorry | grey and gross | bit of both")),
            _move(("Should we move the plans indoors? | Do you think we should cancel? | "
                   "Maybe we postpone until next week?",
                   "yeah let's move it inside | nah we'll be fine, bring a coat | postpone, no stress | "
                   "let's see in the morning | indoors sounds mint")),
            _move(("I got completely soaked on the way home. | I forgot my umbrella again.",
                   "noooo | classic | that's the worst, hot shower time | borrow mine next time"),
                  ("My washing is still outside, of course.", "rip your washing | classic | noooo")),
        ],
        "me_open": _opts("it's so hot today | rain again?? | have you seen the forecast"),
    },
    "films": {
        "moves": [
            _move(("Have you seen {film} yet?", "not yet, no spoilers pls | it's on my list | yes! loved it"),
                  ("Do you want to watch {film} on {day}?",
                   "yes! {day} sounds mint | keen as, where's it on | can we do the day after"),
                  ("I just finished {film}. Wow. | {friend} says {film} is the best film of the year. Thoughts?",
                   "i cried at the end | loved it, the soundtrack is so good | bit overhyped tbh")),
            _move(("It's on at the {cinema} at {time}. Shall I get tickets? | "
                   "Tickets are twelve pounds each. Is that okay?",
                   "get two, i'll send you the money | legend, yes please | {time} is perfect"),
                  ("Should we get snacks beforehand?", "snacks are mandatory | i'll bring the sweets | "
                   "popcorn or nothing")),
            _move(("What did you think of the ending? | I still can't stop thinking about it.",
                   "ending was wild | same, so good | bit slow in the middle but mint overall | "
                   "need to watch it again"),
                  ("Was it better than {film2}?", "way better than {film2} | not even close | "
                   "{film2} is still my favourite")),
            _move(("Any recommendations for tonight? | I need something light to watch. Ideas?",
                   "{film2}, trust me | try {film2}, it's short | anything but {film} | "
                   "rewatch {film2}, never fails")),
        ],
        "me_open": _opts("just watched {film} | film night {day}? | ok you need to see {film}"),
    },
    "travel": {
        "moves": [
            _move(("We're thinking of going to {town} in {month}. Have you been? | Any tips for {town}?",
                   "yes! {town} is mint | eat at the harbour, trust me | haven't been but keen | "
                   "go to the beach early, it gets busy"),
                  ("I've booked a week in {town}!", "so jealous, have the best time | amazing! when do you go"),
                  ("Do you want to come to {town} with us for {duration}?",
                   "yes, when | depends on work but maybe | keen as, send dates")),
            _move(("Is {duration} enough, do you think?", "{duration} is plenty | i'd do a bit longer"),
                  ("Should we get the train or drive?", "train for sure, less stress | drive, more room for snacks"),
                  ("How much did the flights cost you?", "can't remember, not much | about eighty quid")),
            _move(("We just arrived and it's beautiful. | Greetings from {town}! The weather is perfect. | "
                   "The hotel has a pool on the roof!",
                   "send pics! | amazing, enjoy it legend | so jealous | have a swim for me | living the dream")),
            _move(("Here's the place we're staying: {stay_link}", "looks mint | so fancy | ok i'm coming too"),
                  ("Can you water my plants while I'm away? | Could you feed the cat on Tuesday?",
                   "yes, no stress | course, leave the key under the pot | will do, what time does she eat")),
        ],
        "me_open": _opts("thinking of a trip to {town} | anyone keen for {town} in {month} | need a holiday"),
    },
    "borrowing": {
        "moves": [
            _move(("Can I borrow your {item} this weekend? | Would you mind lending me your {item} for a few days?",
                   "yeah of course | sure, no stress | yes legend, come grab it"),
                  ("Do you still have that {item}?",
                   "yep, it's in the cupboard | somewhere in the loft | lent it to {friend}, will ask"),
                  ("Do you know anyone with a {item} I could borrow?", "{friend} has one i think | ask {friend} | "
                   "i have one!")),
            _move(("When can I pick it up? | Is tomorrow morning okay to collect it?",
                   "anytime after {time} | tomorrow works | i'll drop it round"),
                  ("Can you leave it with your neighbour?", "i'll leave it by the door | yep, number 12 has it")),
            _move(("I'll bring it back on {day}, promise. | Thank you so much, I'll return it soon.",
                   "no rush | no stress, keep it as long as you need | legend, thanks"),
                  ("I've broken it. I'm so sorry.",
                   "no worries, it was old anyway | ah well, no stress | oh no, did you hurt yourself")),
        ],
        "me_open": _opts("can i borrow your {item}? | do you still have a {item} | need a {item} for {day}"),
    },
    "birthdays": {
        "moves": [
            _move(("It's {relative}'s birthday on {day}. Have you got a present yet? | "
                   "What should we get {relative} this year?",
                   "thinking {gift}? | yes, got {gift} | no idea, help"),
                  ("Don't forget {relative}'s birthday!", "oh no, totally forgot | thanks for the reminder legend"),
                  ("Are you coming to {relative}'s birthday dinner?", "of course, what time | wouldn't miss it")),
            _move(("Shall we go halves on {gift}? | Do you think {relative} would like {gift}?",
                   "yes, halves sounds mint | love that idea | they'd love it | bit much maybe? but cute"),
                  ("I found {gift} online: {gift_link}", "perfect, that's the one | love it, order it")),
            _move(("I've booked a table at {place} for {time}.",
                   "legend, i'll be there | {time} at {place}, sounds mint"),
                  ("Dinner is at {time}. Can you bring a cake?", "i'll bake {bake} | on it, no stress")),
            _move(("Can you sign the card on your way past?", "signed it | on my way now"),
                  ("Will you call {relative} later? They'd love that.", "yes will call tonight | course")),
        ],
        "me_open": _opts("what are we getting {relative} | {relative}'s birthday is {day}!! | "
                         "present ideas for {relative}?"),
    },
    "checkin": {
        "moves": [
            _move(("How are you doing? I feel like I haven't heard from you in ages. | How was your week?",
                   "all good, just busy | long week but good | surviving, you?"),
                  ("How did the interview go?", "went well i think! | hard to tell, fingers crossed"),
                  ("Are you feeling better today?", "much better thanks | still a bit rough"),
                  ("How's everything with the new flat?", "flat is mint, finally unpacked | still living out of boxes")),
            _move(("Glad to hear it. Anything exciting planned?", "not really, climbing and sleep | trip to {town} soon!"),
                  ("Work has been really hectic for me too. | I've been so tired lately.",
                   "same, need a holiday | tell me about it | rest up legend | early night, no stress")),
            _move(("We should call this week. | Let me know if you want to talk.",
                   "yes, call on {day}? | thanks, means a lot"),
                  ("Mum was asking about you, by the way.", "tell her i'm alive | will ring her tonight")),
        ],
        "me_open": _opts("how's things? | you alive? | miss you, how's your week"),
    },
}

# A partner's answer when the persona starts the conversation.
_ACKS = _opts("Hey! Go on. | Oh, tell me more! | Hi! What's up? | Ooh, interesting. | Good question. | "
              "Hello! Yes, I'm around. | Yeah, I'm here. What's up? | No idea, to be honest.")
_CLOSERS = _opts("Perfect, see you then! | Great, speak soon. | Brilliant, thanks! | Okay, talk later. | "
                 "Sounds good to me. | Lovely, thank you. | Yes, that works for me. | "
                 "Yeah, let's do that. | No worries at all. | Yep, see you there. | Not a problem.")
_MY_CLOSERS = _opts("see ya | night night | bye | speak soon | legend | perfect | 🌵")
_MY_FOLLOW_UPS = _opts("haha | hahaha | 🌵 | legend | no stress | wait | actually yes | 🙌 | lol | so good | "
                       "or {time}?")
# Another group member chiming in on a plan before the persona answers.
_CHIME_TOPICS = ("plans", "climbing", "films", "travel")
_GROUP_CHIMES = _opts("I'm in too! | Count me in. | Can't make it this time, sorry. | {friend}, are you driving? | "
                      "Same here. | Good shout, {friend}. | I'll be there around {time}. | "
                      "I might be a bit late.")


# --------------------------------------------------------------------------- context habits
#
# Replies that depend on the message they answer in a fixed, checkable way. A model that ignores
# the message cannot show them (the untrained base scores about 0); a twin that answers in
# context does. :func:`persona_habit_accuracy` measures them on any (message, reply) pairs.

#: "A or B?": the persona always makes the same choice within each pair, whichever comes first
#: in the question (the preferred option is the first of each pair here).
PREFERENCES = (("coffee", "tea"), ("hills", "beach"), ("curry", "pizza"), ("cinema", "pub"),
               ("train", "bus"), ("tacos", "sushi"), ("dogs", "cats"))
_CHOICE_ASKS = _opts("{a} or {b}? | Quick one: {a} or {b}? | Settle an argument: {a} or {b}? | "
                     "Important question. {a} or {b}?")
_CHOICE_REPLY = "{pick}, obviously"
#: A day proposed for a plan: the persona answers with that day (``"{day} works"``).
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_ASKS = _opts("What about {day}? | Could you do {day}? | {day} any good for you?")
_DAY_REPLY = "{day} works"
#: A good-night message: always the same sign-off.
GOOD_NIGHTS = _opts("Night! | Good night! | Night night, sleep well! | Off to bed. Night! | Sleep well!")
_GOOD_NIGHT_REPLY = "nighty night \U0001F319"

_ITEMS = "|".join(x for pair in PREFERENCES for x in pair)
_CHOICE_RE = re.compile(r"\b(" + _ITEMS + r") or (" + _ITEMS + r")\?", re.IGNORECASE)
_PREFERRED = {frozenset(p): p[0] for p in PREFERENCES}
_DAY_RE = re.compile(r"^(?:What about (D)\?|Could you do (D)\?|(D) any good for you\?)$".replace("D", "|".join(DAYS)))


def _last_line(message: str) -> str:
    """The last non-empty line of a turn (a turn can join several messages of one sender)."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _choice(message: str) -> tuple[str, str] | None:
    """``(preferred, other)`` when ``message`` asks one of the :data:`PREFERENCES` questions."""
    m = _CHOICE_RE.search(_last_line(message))
    if not m:
        return None
    pair = frozenset((m.group(1).lower(), m.group(2).lower()))
    pick = _PREFERRED.get(pair)
    return (pick, next(x for x in pair if x != pick)) if pick else None


def _choice_check(message: str, reply: str) -> bool:
    c = _choice(message)
    words = set(tokenize(reply))
    return bool(c) and c[0] in words and c[1] not in words


def _day(message: str) -> str | None:
    m = _DAY_RE.match(_last_line(message))
    return next(g for g in m.groups() if g) if m else None


def _day_check(message: str, reply: str) -> bool:
    day = _day(message)
    return bool(day) and day.lower() in set(tokenize(reply))


@dataclass(frozen=True)
class Habit:
    """A context habit: which messages trigger it and whether a reply shows it.

    ``applies(message)`` says whether the habit is due in reply to ``message``;
    ``check(message, reply)`` whether ``reply`` shows it. Both see the anonymized text of
    ``pairs.csv`` (names are placeholders there, so no habit depends on one).
    """

    name: str
    description: str
    applies: Callable[[str], bool]
    check: Callable[[str, str], bool]


HABITS: tuple[Habit, ...] = (
    Habit("either_or", '"A or B?" gets the same pick in either order: "tea or coffee?" and "coffee or tea?" -> '
          '"coffee, obviously" (see PREFERENCES)', lambda msg: _choice(msg) is not None, _choice_check),
    Habit("echo_day", 'a proposed day is answered with that day: "Could you do Thursday?" -> "thursday works"',
          lambda msg: _day(msg) is not None, _day_check),
    Habit("good_night", 'a good-night message gets the same sign-off: "Night!" -> "nighty night \U0001F319"',
          lambda msg: _last_line(msg) in GOOD_NIGHTS, lambda msg, reply: "nighty night" in str(reply).lower()),
)


def all_habits() -> tuple[Habit, ...]:
    """Every sample persona's habits: the English one's (:data:`HABITS`) and the Chinese one's, when present."""
    habits = HABITS
    try:
        from twinlib.sample_data_zh import HABITS_ZH
    except ImportError:
        return habits
    return habits + tuple(HABITS_ZH)


def habit_of(message: str, habits: Sequence[Habit] | None = None) -> Habit | None:
    """The habit due in reply to ``message`` (the first that applies), or None."""
    for h in (all_habits() if habits is None else habits):
        if h.applies(message):
            return h
    return None


def persona_habit_accuracy(messages: Sequence[str], replies: Sequence[str], habits: Sequence[Habit] | None = None) -> dict:
    """How often ``replies`` show the habit their ``message`` calls for.

    Only the pairs whose message triggers a habit count. Returns ``{"accuracy", "hits", "n",
    "ci_low", "ci_high", "by_habit": {name: {"accuracy", "hits", "n"}}}``; the accuracy is
    ``None`` when no message triggers a habit (a user's own chats, for example), and the interval
    is the 95% Wilson interval.
    """
    from twinlib.stats import binomial_ci

    if len(messages) != len(replies):
        raise ValueError(f"need one reply per message, got {len(messages)} messages and {len(replies)} replies")
    by: dict[str, dict] = {}
    for msg, rep in zip(messages, replies):
        h = habit_of(msg, habits)
        if h is None:
            continue
        d = by.setdefault(h.name, {"hits": 0, "n": 0})
        d["n"] += 1
        d["hits"] += int(bool(h.check(msg, rep if isinstance(rep, str) else "")))
    for d in by.values():
        d["accuracy"] = d["hits"] / d["n"]
    hits, n = sum(d["hits"] for d in by.values()), sum(d["n"] for d in by.values())
    lo, hi = binomial_ci(hits, n) if n else (None, None)
    return {"accuracy": hits / n if n else None, "hits": hits, "n": n, "ci_low": lo, "ci_high": hi, "by_habit": by}


@dataclass(frozen=True)
class _Person:
    """How one partner writes: how often they add a sentence, and which ones."""

    extra_p: float
    extras: tuple[str, ...]
    greet_p: float
    greetings: tuple[str, ...]
    emoji_p: float = 0.0
    emoji: str = ""


_PEOPLE: dict[str, _Person] = {
    "Maya Okafor": _Person(0.4, tuple(_opts(
        "Honestly, this week has been so long. | I've been looking forward to this all week! | "
        "Also, I finally finished that book you lent me, and I loved every page of it. | "
        "Let me know what you think, there's no pressure at all. | {friend} says hi, by the way. | "
        "I keep meaning to text you about it and then forgetting. | "
        "Anyway, tell me everything when you get a chance! | My sister is staying with me this week, so it's chaos. | "
        "I've just got back from the longest run of my life. | Sorry, I'm replying from the bus. | "
        "I think {friend} would be up for it as well. | The cat has been sitting on my laptop all evening.")), 0.3,
        tuple(_opts("Hiya! | Hey you! | Hi {me}! | Hello lovely!")), 0.08, " 😂"),
    "Jonah Pike": _Person(0.08, tuple(_opts("Cheers. | Let me know. | Either way. | Up to you.")), 0.1,
                          tuple(_opts("Hey. | Alright?"))),
    "Tess Vale": _Person(0.3, tuple(_opts(
        "Mum says hi. | Don't be late this time! | Also, call Mum, she misses you. | "
        "Love you! | I told {friend} about it too. | The kids are driving me up the wall today. | "
        "Dad wants to know if you're coming on Sunday.")), 0.25,
        tuple(_opts("Hey sis! | Morning! | Hi {me}!")), 0.25, " 😊"),
    "Priya Nandakumar": _Person(0.2, tuple(_opts("Bring chalk. | Bring layers, it gets cold up there. | "
                                                 "I'll sort the car. | I've checked the tide times.")), 0.1,
                                tuple(_opts("Morning team!")), 0.1, " 💪"),
    "Olly Brandt": _Person(0.15, tuple(_opts("I'll bring the guidebook. | Let me know by tonight. | "
                                             "{friend} is coming too.")), 0.05, tuple(_opts("Right, folks."))),
    "Sam Keene": _Person(0.25, tuple(_opts("Weather permitting, of course. | I need to get out of the city. | "
                                           "My shoulder is finally better. | I'll be the one with the orange rope.")),
                         0.1, tuple(_opts("Hi all!"))),
    "Dana Whitlock": _Person(0.4, tuple(_opts(
        "Let me know if that works. | Thanks in advance. | No rush, but it would be good to sort it this week. | "
        "I've copied {friend} in as well. | Happy to jump on a call if that is easier. | "
        "I'm in back-to-back meetings until three.")), 0.35,
        tuple(_opts("Hi {me}, | Morning {me}, | Hello!"))),
}


@dataclass(frozen=True)
class _ChatPlan:
    """How a chat behaves: its topics, how many conversations a day and when."""

    topics: dict[str, int]
    sessions: tuple[float, ...]          # weights for 0, 1, 2, ... conversations on a day
    windows: tuple[tuple[int, int], ...]  # start windows in minutes after midnight, hours apart
    weekdays_only: bool = False
    # (speaker or None for the persona, text, answers) kept in the chat's history at least twice
    pii: tuple[tuple[str | None, str, str], ...] = ()


_DAY_WINDOWS = ((7 * 60 + 30, 8 * 60 + 45), (11 * 60 + 30, 12 * 60 + 30), (14 * 60 + 30, 15 * 60 + 15),
                (17 * 60 + 30, 18 * 60 + 45), (20 * 60 + 30, 22 * 60 + 30))
_WORK_WINDOWS = ((9 * 60, 9 * 60 + 45), (11 * 60, 11 * 60 + 30), (13 * 60, 13 * 60 + 30),
                 (15 * 60, 15 * 60 + 30), (16 * 60 + 45, 17 * 60 + 15))

_MIN_GAP = timedelta(minutes=90)

_PLANS: dict[str, _ChatPlan] = {
    "Maya Okafor": _ChatPlan(
        {"plans": 3, "food": 3, "films": 2, "travel": 2, "weather": 1, "borrowing": 1, "birthdays": 1,
         "checkin": 2, "climbing": 1},
        (0.1, 0.25, 0.3, 0.2, 0.1, 0.05), _DAY_WINDOWS,
        pii=(("Maya Okafor", "My new number is +44 7700 900123. The old one is broken.", "saved | got it, legend"),
             ("Maya Okafor", "Send the photos to maya.okafor@example.com when you can.",
              "sending now | will do tonight"),
             (None, "my new email is robin.vale@example.com", "Saved, thanks!"))),
    "Jonah Pike": _ChatPlan(
        {"films": 3, "plans": 2, "food": 2, "climbing": 2, "borrowing": 2, "checkin": 1, "travel": 1},
        (0.15, 0.3, 0.3, 0.15, 0.1), _DAY_WINDOWS,
        pii=(("Jonah Pike", "Call me on 07700 900456 if you get lost.", "will do | perfect, thanks"),
             ("Jonah Pike", "Tickets are here: https://example.org/tickets/8841", "legend, got mine"),
             (None, "my number changed, it's +44 7700 900777 now", "Got it, thanks."))),
    "Tess Vale": _ChatPlan(
        {"birthdays": 3, "checkin": 3, "food": 2, "travel": 2, "borrowing": 2, "weather": 2, "plans": 1},
        (0.1, 0.25, 0.3, 0.2, 0.15), _DAY_WINDOWS,
        pii=(("Tess Vale", "Can you book it on my card? 4111 1111 1111 1111, expiry 09/27.",
              "done, no stress | booked it"),
             ("Tess Vale", "Pay me back whenever. My account is GB82 WEST 1234 5698 7654 32.",
              "sent it just now | will do tonight"),
             ("Tess Vale", "Mum's new number is (555) 010-4477.", "saved, thanks"),
             ("Tess Vale", "Maya gave me her number for the party: 555.010.3190.", "ok, got it"))),
    "Climbing crew": _ChatPlan(
        {"climbing": 6, "plans": 2, "weather": 2, "travel": 1, "food": 1, "borrowing": 1},
        (0.1, 0.25, 0.3, 0.2, 0.1, 0.05), _DAY_WINDOWS,
        pii=(("Priya Nandakumar", "Meeting point is 51.5072, -0.1276, just past the gate.", "see you there"),
             ("Olly Brandt", "location: https://maps.google.com/?q=51.5072,-0.1276", "omw"),
             ("Sam Keene", "Topo for the crag: https://example.org/topos/raven-edge", "sounds mint"),
             ("Sam Keene", "My number for the lift share is +447700900981.", "saved"))),
    "Dana Whitlock": _ChatPlan(
        {"work": 8, "plans": 1, "weather": 1, "checkin": 1, "food": 1},
        (0.05, 0.2, 0.35, 0.25, 0.15), _WORK_WINDOWS, weekdays_only=True,
        pii=(("Dana Whitlock", "The staging box is at 192.0.2.14, same login as before.", "on it | thanks"),
             ("Dana Whitlock", "Can you forward it to dana.whitlock@example.com? My work inbox is full.", "sent"),
             ("Dana Whitlock", "If I'm not at my desk, ring me on +1 555-010-2288.", "will do"),
             ("Dana Whitlock", "The shared doc is here: https://example.org/docs/q3-plan?id=77",
              "thanks, legend"))),
}


def _first(name: str) -> str:
    """First name of a display name."""
    return name.split()[0]


class _Writer:
    """Builds one chat: a list of (time, sender or None for system lines, text)."""

    def __init__(self, rng: random.Random, title: str):
        self.rng = rng
        self.title = title
        self.members = PARTNERS[title]
        self.plan = _PLANS[title]
        self.lines: list[tuple[datetime, str | None, str]] = []
        self.now = START

    # --- slots and text -------------------------------------------------------------------
    def _slots(self, speaker: str) -> dict[str, str]:
        rng = self.rng
        slots = {k: rng.choice(v) for k, v in SLOTS.items()}
        slots["dish2"] = rng.choice([d for d in SLOTS["dish"] if d != slots["dish"]])
        slots["film2"] = rng.choice([f for f in SLOTS["film"] if f != slots["film"]])
        others = [_first(m) for ms in PARTNERS.values() for m in ms if m != speaker]
        slots["friend"] = rng.choice(others)
        slots["me"] = PERSONA_FIRST
        slots["stay_link"] = f"https://example.org/stays/{rng.randint(1000, 9999)}"
        slots["gift_link"] = f"https://example.org/gifts/{rng.randint(1000, 9999)}?ref=share"
        return slots

    def _mine(self, template: str, slots: dict[str, str], topic: str) -> str:
        """The persona's version of a reply template: lower case, no full stop, markers added."""
        rng = self.rng
        base = template.format_map(slots).lower().rstrip(". ")
        text = base
        words = set(tokenize(text))
        if not words & {"haha", "hahah", "hahaha"}:
            r = rng.random()
            if r < 0.24:
                text = rng.choice(["haha", "haha", "hahah", "hahaha"]) + " " + text
            elif r < 0.34:
                text = text + " " + rng.choice(["haha", "hahah"])
        if "legend" not in words and rng.random() < 0.07:
            text += " legend"
        r = rng.random()
        if topic == "climbing" and r < 0.2:
            text += " " + CLIMBER
        elif r < 0.32:
            text += " 🌵"
        elif r < 0.36:
            text += " 🌵🌵"
        elif r < 0.42:
            text += " 🙌"
        if count_words(text) > PERSONA_MARKERS["max_words"]:
            text = base
        return text

    def _theirs(self, speaker: str, template: str, slots: dict[str, str], first: bool) -> list[str]:
        """A partner's message(s): the template plus, sometimes, a greeting and an extra sentence."""
        rng, who = self.rng, _PEOPLE[speaker]
        text = template.format_map(slots)
        greeting = rng.choice(who.greetings) if first and rng.random() < who.greet_p else ""
        if greeting and not (greeting.startswith("Morning") and self.now.hour >= 12):
            text = greeting.format_map(slots) + " " + text
        out = [text]
        if rng.random() < who.extra_p:
            extra = rng.choice(who.extras).format_map(slots)
            if rng.random() < 0.3:
                out.append(extra)
            else:
                out[0] = text + " " + extra
        if who.emoji and rng.random() < who.emoji_p:
            out[-1] += who.emoji
        return out

    # --- timeline -------------------------------------------------------------------------
    def _add(self, sender: str | None, text: str, gap: int) -> None:
        self.now += timedelta(minutes=gap)
        rng = self.rng
        if sender is not None and rng.random() < 0.03:
            self.lines.append((self.now, sender, MEDIA))
        self.lines.append((self.now, sender, text + (EDITED if sender and rng.random() < 0.01 else "")))
        if sender is not None and rng.random() < 0.005:
            self.lines.append((self.now, sender, DELETED_MINE if sender == PERSONA_NAME else DELETED_OTHER))

    def _they_say(self, speaker: str, template: str, slots: dict[str, str], first: bool = False) -> None:
        for i, text in enumerate(self._theirs(speaker, template, slots, first)):
            self._add(speaker, text, self.rng.choice([0, 1, 1, 2, 3, 5, 8]) if i == 0 else self.rng.choice([0, 1]))

    def _i_say(self, templates: Sequence[str], slots: dict[str, str], topic: str) -> None:
        rng = self.rng
        first = rng.choice(templates)
        self._add(PERSONA_NAME, self._mine(first, slots, topic), rng.choice([0, 1, 1, 2, 2, 4, 6, 11]))
        if rng.random() < 0.15:  # a second quick message within a minute
            pool = [t for t in templates if t != first] if rng.random() < 0.5 and len(templates) > 1 else _MY_FOLLOW_UPS
            self._add(PERSONA_NAME, self._mine(rng.choice(pool), slots, topic), rng.choice([0, 1]))

    def _habits(self, speaker: str) -> None:
        """Sometimes an "A or B?" question or a proposed day, answered the persona's fixed way."""
        rng = self.rng
        if rng.random() < 0.2:
            pair = rng.choice(PREFERENCES)
            a, b = pair if rng.random() < 0.5 else pair[::-1]
            ask = rng.choice(_CHOICE_ASKS).format(a=a, b=b)
            self._add(speaker, ask[0].upper() + ask[1:], rng.choice([1, 2, 3]))
            self._add(PERSONA_NAME, _CHOICE_REPLY.format(pick=pair[0]), rng.choice([0, 1, 2]))
        if rng.random() < 0.2:
            day = rng.choice(DAYS)
            self._add(speaker, rng.choice(_DAY_ASKS).format(day=day), rng.choice([1, 2, 3]))
            self._add(PERSONA_NAME, _DAY_REPLY.format(day=day.lower()), rng.choice([0, 1, 2]))

    def _pick_topic(self) -> str:
        names = list(self.plan.topics)
        return self.rng.choices(names, weights=[self.plan.topics[n] for n in names])[0]

    def conversation(self, start: datetime, pii: tuple[str | None, str, str] | None) -> None:
        """One conversation on one topic, starting at ``start``, a few minutes long."""
        rng = self.rng
        self.now = start
        group = len(self.members) > 1
        topic = self._pick_topic()
        moves = TOPICS[topic]["moves"]
        speaker = rng.choice(self.members)
        slots = self._slots(speaker)
        chosen = [0] + sorted(rng.sample(range(1, len(moves)), rng.randint(1, len(moves) - 1)))
        if rng.random() < 0.18:  # the persona starts it
            self._add(PERSONA_NAME, self._mine(rng.choice(TOPICS[topic]["me_open"]), slots, topic), 0)
            self._they_say(speaker, rng.choice(_ACKS), slots)
            chosen = chosen[1:]
        for i, mi in enumerate(chosen):
            prompts, replies = rng.choice(moves[mi])
            if group and i:
                speaker = rng.choice(self.members)
                slots["friend"] = _first(rng.choice([m for m in self.members if m != speaker]))
            self._they_say(speaker, rng.choice(prompts), slots, first=(i == 0 and chosen[0] == 0))
            if group and i == 0 and topic in _CHIME_TOPICS and rng.random() < 0.6:
                other = rng.choice([m for m in self.members if m != speaker])
                chime_slots = dict(slots, friend=_first(speaker))
                self._add(other, rng.choice(_GROUP_CHIMES).format_map(chime_slots), rng.choice([0, 1, 2, 4]))
            if not group or rng.random() < 0.8:
                self._i_say(replies, slots, topic)
            if i == 0 and pii is not None:
                who, text, answers = pii
                if who is None:
                    self._add(PERSONA_NAME, text, rng.choice([1, 2]))
                    self._they_say(rng.choice(self.members), rng.choice(_opts(answers)), slots)
                else:
                    self._add(who, text, rng.choice([1, 2, 3]))
                    self._i_say(_opts(answers), slots, topic)
            if i == 0:
                self._habits(rng.choice(self.members))
        if start.hour >= 20 and rng.random() < 0.8:  # an evening chat ends with good night
            self._add(rng.choice(self.members), rng.choice(GOOD_NIGHTS), rng.choice([1, 2, 4]))
            self._add(PERSONA_NAME, _GOOD_NIGHT_REPLY, rng.choice([0, 1, 2]))
        elif rng.random() < 0.45:
            self._they_say(rng.choice(self.members), rng.choice(_CLOSERS), slots)
            if rng.random() < 0.5:
                self._add(PERSONA_NAME, self._mine(rng.choice(_MY_CLOSERS), slots, topic), rng.choice([0, 1, 2]))

    def history(self, n_days: int) -> None:
        """All conversations of the chat over ``n_days`` days from :data:`START`."""
        rng, plan = self.rng, self.plan
        opened = START.replace(hour=7, minute=0)
        self.lines.append((opened, None, ENCRYPTION_NOTICE))
        if len(self.members) > 1:
            self.lines.append((opened, None, f'{self.members[0]} created group "{self.title}"'))
            self.lines.append((opened, None, f"{self.members[0]} added you"))
        starts, pii_at = plan_conversations(rng, plan, START, n_days, plan.pii)
        for i, start in enumerate(starts):
            # a quiet gap of at least _MIN_GAP after the previous conversation
            self.conversation(max(start, self.now + _MIN_GAP), pii_at.get(i))
            if i == len(starts) // 3 and len(self.members) > 1:
                self.lines.append((self.now + timedelta(minutes=3), None, f"{self.members[1]} changed this group's icon"))

    def render(self) -> str:
        """The chat as WhatsApp Android writes it."""
        out = []
        for when, sender, text in self.lines:
            stamp = when.strftime("%d/%m/%Y, %H:%M")
            out.append(f"{stamp} - {text}" if sender is None else f"{stamp} - {sender}: {text}")
        return "\n".join(out) + "\n"


def plan_conversations(rng: random.Random, plan, start: datetime, n_days: int, pii: Sequence) -> tuple[list, dict]:
    """When a chat's conversations start over ``n_days`` days from ``start`` (``plan``: its
    ``sessions`` weights, time ``windows`` in minutes and ``weekdays_only``), and which of them
    carry the chat's planted personal data (each item twice, never in the first conversation)."""
    starts = []
    for day in range(n_days):
        date = start + timedelta(days=day)
        if plan.weekdays_only and date.weekday() >= 5:
            continue
        k = rng.choices(range(len(plan.sessions)), weights=plan.sessions)[0]
        for lo, hi in sorted(rng.sample(plan.windows, min(k, len(plan.windows)))):
            starts.append(date + timedelta(minutes=rng.randint(lo, hi)))
    pii_at: dict[int, tuple[str | None, str, str]] = {}
    free = list(range(1, len(starts)))
    rng.shuffle(free)
    for item in tuple(pii) * 2:
        if free:
            pii_at[free.pop()] = item
    return starts, pii_at


def chat_filename(title: str) -> str:
    """The name WhatsApp gives an exported chat."""
    return f"WhatsApp Chat with {title}.txt"


def generate_sample(out_dir, seed: int = 0, n_days: int = 120, chats: Iterable[str] | None = None) -> list[Path]:
    """Write the persona's WhatsApp exports into ``out_dir`` and return their paths.

    ``chats`` picks a subset of :data:`PARTNERS` (by title); each chat draws from its own random
    stream derived from ``seed`` and the title, so a subset gives the same files as the full set.
    """
    titles = list(PARTNERS) if chats is None else list(chats)
    unknown = [t for t in titles if t not in PARTNERS]
    if unknown:
        raise ValueError(f"unknown chat(s) {unknown}; choose from {list(PARTNERS)}")
    return write_chats(out_dir, titles, lambda title: _Writer(random.Random(f"{seed}:{title}"), title), chat_filename,
                       n_days, newline="\n")


def write_chats(out_dir, titles: Iterable[str], writer_for, filename, n_days: int, newline: str) -> list[Path]:
    """Write each chat's ``n_days`` of history (``writer_for(title)``: an object with ``history`` and
    ``render``) into ``out_dir`` under ``filename(title)``; returns the paths."""
    if n_days < 1:
        raise ValueError("n_days must be at least 1.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for title in titles:
        writer = writer_for(title)
        writer.history(n_days)
        path = out_dir / filename(title)
        path.write_text(writer.render(), encoding="utf-8", newline=newline)
        paths.append(path)
    return paths


def ensure_sample(paths: Sequence) -> list:
    """``paths`` unchanged, after generating the synthetic sample into any ``.../data/sample``
    folder among them that does not exist, and the Chinese one (:mod:`twinlib.sample_data_zh`) into
    any missing ``.../data/sample-zh`` (a fresh Colab runtime or Drive folder has no copy of the
    repository's ``data/``). Generation is deterministic: the files equal the bundled ones."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for p in paths:
        path = Path(p).expanduser()
        if path.exists():
            continue
        if path.parts[-2:] == ("data", "sample"):
            files = generate_sample(path)
            print(f"generated the synthetic sample persona ({len(files)} chats) into {path}")
        elif path.parts[-2:] == ("data", "sample-zh"):
            from twinlib.sample_data_zh import generate_sample as generate_sample_zh

            files = generate_sample_zh(path)
            print(f"generated the synthetic Chinese sample persona ({len(files)} chats) into {path}")
    return paths


def _has_phrase(tokens: list[str], phrases: Iterable[str]) -> bool:
    """True when one of the (lower-case, space-separated) ``phrases`` occurs in ``tokens``."""
    joined = " " + " ".join(tokens) + " "
    return any(" " + p + " " in joined for p in phrases)


def persona_style_score(text: str) -> float:
    """How much ``text`` carries the persona's markers (:data:`PERSONA_MARKERS`), in [0, 1].

    Weighted checks: no capital letter (0.3), no final full stop (0.1), at most
    ``max_words`` words (0.15), a laugh or signature phrase (0.3), a signature emoji (0.15).
    In the sample the persona's replies average about 0.75, the partners' messages under 0.2,
    and long strings of random words from the chats under 0.2.
    """
    if not text or not text.strip():
        return 0.0
    tokens = tokenize(text)
    marks = PERSONA_MARKERS
    score = 0.3 * is_lowercase(text)
    score += 0.1 * (not ends_with_punct(text, "."))
    score += 0.15 * (count_words(text) <= marks["max_words"])
    score += 0.3 * (any(t in marks["laughs"] for t in tokens) or _has_phrase(tokens, marks["phrases"]))
    score += 0.15 * any(e in find_emoji(text) for e in marks["emoji"])
    return round(score, 6)


def sample_cli(argv: Sequence[str] | None, generate, default_out: str, description: str) -> None:
    """The command line of a sample generator: ``--out``, ``--seed``, ``--days``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=default_out, help="folder to write the exports into")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument("--days", type=int, default=120, help="days of history")
    args = parser.parse_args(argv)
    paths = generate(args.out, seed=args.seed, n_days=args.days)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} chats ({total / 1e6:.2f} MB) to {args.out}")


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m twinlib.sample_data --out data/sample [--seed 0] [--days 120]``."""
    sample_cli(argv, generate_sample, "data/sample", "Write the synthetic persona's WhatsApp exports.")


if __name__ == "__main__":
    main()
