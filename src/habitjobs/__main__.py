from habitjobs.cli.main import main

main()
