"""The 24 emotional sentences of the former demo corpus, kept for `bin/bench-transcribe` (transcription
speed on espeak-ng speech). The demo itself now runs on `sercache.benchcorpus`, the hard benchmark corpus.
"""

SENTENCES = {
    "A": ["I am absolutely furious with you right now", "Get out of my way this is outrageous",
          "How dare you lie to me again", "This is the worst service I have ever had",
          "Stop shouting and give me back my money", "I told you a hundred times not to touch it"],
    "H": ["This is the best day of my whole life", "I am so happy to see you again",
          "We won the match and everyone is celebrating", "What a wonderful surprise thank you so much",
          "I love this song it makes me want to dance", "Our baby finally said her first word"],
    "S": ["I miss her every single day", "Nobody came to my birthday party",
          "The old dog passed away last night", "I lost my job and I do not know what to do",
          "Everything feels empty since you left", "I tried so hard and still failed again"],
    "N": ["The meeting starts at ten in the morning", "Please put the files on the second shelf",
          "The train to the city leaves from platform four", "Water boils at one hundred degrees",
          "The report has twelve pages and three tables", "Turn left at the next corner"],
}
