from dialbase.cli import main

main()
